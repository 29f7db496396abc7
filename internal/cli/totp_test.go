package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/app"
)

func TestTOTPCommandPrintsTheCurrentCode(t *testing.T) {
	t.Parallel()
	key, err := totp.Generate(totp.GenerateOpts{Issuer: "Decision Fabric", AccountName: "ana"})
	require.NoError(t, err)
	var out, errOut bytes.Buffer
	require.Equal(t, 0, Main(context.Background(), []string{"totp", "-uri", key.URL()}, app.All, &out, &errOut), errOut.String())
	code := strings.TrimSpace(out.String())
	require.Len(t, code, 6)
	ok, err := totp.ValidateCustom(code, key.Secret(), time.Now(), totp.ValidateOpts{Period: 30, Skew: 1, Digits: 6})
	require.NoError(t, err)
	require.True(t, ok, "the printed code verifies")

	out.Reset()
	errOut.Reset()
	require.Equal(t, 1, Main(context.Background(), []string{"totp", "-uri", "otpauth://hotp/x?secret=AAAA&counter=1"}, app.All, &out, &errOut))
	require.Contains(t, errOut.String(), "otpauth://totp/")
	require.Equal(t, 1, Main(context.Background(), []string{"totp"}, app.All, &out, &errOut))
}
