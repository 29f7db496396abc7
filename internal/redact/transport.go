package redact

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// TransportError is err from an HTTP client call without the request URL: a
// *url.Error's text quotes the whole URL, whose userinfo or query may carry
// credentials (a webhook token, a basic-auth password). It keeps the cause, so
// errors.Is(err, context.DeadlineExceeded) still holds; other errors are returned as
// they are.
func TransportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s request: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}
