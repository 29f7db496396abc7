package server

import (
	"fmt"

	"google.golang.org/grpc/status"

	"github.com/decision-fabric/fabric/internal/redact"
)

// MaxMessageRunes bounds the message of an error a caller receives (gRPC status
// message, REST "message") and every string a call's log line carries. Handlers
// quote request values with redact.Echo, which keeps them far shorter; this is
// the net under every message, the gateway's own JSON decoding errors included,
// so that no request value is echoed in full however it got into an error.
const MaxMessageRunes = 1024

// clipStatus returns err with its status message cut to MaxMessageRunes runes
// (details kept); err itself when it is short enough or not a status.
func clipStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok || len(st.Message()) <= MaxMessageRunes {
		return err
	}
	p := st.Proto()
	p.Message = redact.Truncate(p.GetMessage(), MaxMessageRunes)
	return status.ErrorProto(p)
}

// clipFields cuts the string and error values of a log call's key-value pairs to
// MaxMessageRunes runes, in place.
func clipFields(fields []any) []any {
	for i, f := range fields {
		switch v := f.(type) {
		case string:
			if len(v) > MaxMessageRunes {
				fields[i] = redact.Truncate(v, MaxMessageRunes)
			}
		case error:
			if s := v.Error(); len(s) > MaxMessageRunes {
				fields[i] = redact.Truncate(s, MaxMessageRunes)
			}
		case fmt.Stringer:
			if s := v.String(); len(s) > MaxMessageRunes {
				fields[i] = redact.Truncate(s, MaxMessageRunes)
			}
		}
	}
	return fields
}
