package server

import (
	"net/http"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the domain of the fabric's google.rpc.ErrorInfo details.
const ErrorDomain = "decisionfabric.dev"

// ReasonIdempotencyKeyReused is the ErrorInfo reason of a request whose
// Idempotency-Key was used before with a different payload.
const ReasonIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"

// ReasonNotConfigured is the ErrorInfo reason of a request for a feature this server
// is not configured for (the hil-gateway's WebAuthn factor without hil.webauthn).
const ReasonNotConfigured = "NOT_CONFIGURED"

// reasonStatus maps ErrorInfo reasons (domain ErrorDomain) to the HTTP status the
// gateway answers with instead of the one of their gRPC code: gRPC has no code for
// "understood but cannot be processed as sent".
var reasonStatus = map[string]int{
	// IETF httpapi idempotency-key draft: "422 Unprocessable Content" when the key
	// is reused with a different request payload.
	ReasonIdempotencyKeyReused: http.StatusUnprocessableEntity,
	// "412 Precondition Failed": the server's configuration, not the resource's
	// state, refuses the request (409 is kept for illegal state transitions).
	ReasonNotConfigured: http.StatusPreconditionFailed,
}

// IdempotencyKeyReused is the error for an Idempotency-Key reused with another
// payload: FAILED_PRECONDITION over gRPC, 422 over REST, with an ErrorInfo naming
// ReasonIdempotencyKeyReused either way.
func IdempotencyKeyReused(msg string) error {
	st, err := status.New(codes.FailedPrecondition, msg).WithDetails(&errdetails.ErrorInfo{
		Reason: ReasonIdempotencyKeyReused, Domain: ErrorDomain,
	})
	if err != nil { // only when the detail cannot be marshaled
		return status.Error(codes.FailedPrecondition, msg)
	}
	return st.Err()
}

// NotConfigured is the error for a request needing a feature this server is not
// configured for: FAILED_PRECONDITION over gRPC, 412 over REST, with an ErrorInfo
// naming ReasonNotConfigured either way.
func NotConfigured(msg string) error {
	st, err := status.New(codes.FailedPrecondition, msg).WithDetails(&errdetails.ErrorInfo{
		Reason: ReasonNotConfigured, Domain: ErrorDomain,
	})
	if err != nil { // only when the detail cannot be marshaled
		return status.Error(codes.FailedPrecondition, msg)
	}
	return st.Err()
}

// httpStatusOf is the HTTP status of a handler's error: that of its ErrorInfo
// reason when it has one in reasonStatus, HTTPStatus(code) otherwise.
func httpStatusOf(err error) int {
	st := status.Convert(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorDomain {
			if code, ok := reasonStatus[info.GetReason()]; ok {
				return code
			}
		}
	}
	return HTTPStatus(st.Code())
}
