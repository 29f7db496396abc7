package server

import (
	"context"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// NewGatewayMux returns the REST mux every service uses: JSON with the proto field names
// of the spec (tenant_id, not tenantId), unknown fields rejected (a typo is a 400, not
// silently lost data), any Content-Type accepted as JSON (the spec's curl examples send
// none), bodies nested deeper than MaxBodyDepth refused before decoding, and the
// fabric's status mapping.
func NewGatewayMux() *runtime.ServeMux {
	return runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: fabricJSON{gatewayJSONPb()}}),
		runtime.WithIncomingHeaderMatcher(headerMatcher),
		runtime.WithErrorHandler(errorHandler),
	)
}

// gatewayJSONPb is the gateway's protojson setup: proto field names, unpopulated
// fields emitted (signed documents aside, see fabricJSON), unknown fields refused.
func gatewayJSONPb() *runtime.JSONPb {
	return &runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}
}

// HTTPStatus maps a gRPC code to the HTTP status the fabric promises. It differs from the
// gateway's default in one place: FAILED_PRECONDITION is 409 Conflict (an illegal state
// transition), not 400.
func HTTPStatus(c codes.Code) int {
	if c == codes.FailedPrecondition {
		return http.StatusConflict
	}
	return runtime.HTTPStatusFromCode(c)
}

func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	err = clipStatus(err) // the gateway's own errors (JSON decoding) quote the body
	// 429 and 503 from admission control say when to come back.
	if secs, ok := retryAfter(ctx, err); ok {
		w.Header().Set("Retry-After", secs)
	}
	if code := httpStatusOf(err); code != runtime.HTTPStatusFromCode(status.Code(err)) {
		w = &statusOverride{ResponseWriter: w, code: code}
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

type statusOverride struct {
	http.ResponseWriter
	code int
}

func (s *statusOverride) WriteHeader(int) { s.ResponseWriter.WriteHeader(s.code) }
