package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// totpCode prints the current TOTP code of an otpauth:// URI (the one POST /mfa/enroll
// returns), for trying approvals from a shell; an authenticator app does the same.
//
//	fabric totp -uri 'otpauth://totp/Decision%20Fabric:ana?secret=...'
func totpCode(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("totp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	uri := fs.String("uri", "", "the otpauth:// URI from POST /mfa/enroll")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *uri == "" {
		return errors.New("totp: -uri is required")
	}
	key, err := otp.NewKeyFromURL(*uri)
	if err != nil {
		return fmt.Errorf("totp: %w", err)
	}
	if key.Type() != "totp" {
		return errors.New("totp: not an otpauth://totp/ URI")
	}
	code, err := totp.GenerateCodeCustom(key.Secret(), time.Now(), totp.ValidateOpts{
		Period: uint(key.Period()), Digits: key.Digits(), Algorithm: key.Algorithm(), Skew: 1})
	if err != nil {
		return fmt.Errorf("totp: %w", err)
	}
	fmt.Fprintln(stdout, code)
	return nil
}
