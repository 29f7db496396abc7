package server

import (
	"io"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
)

// fabricJSON is the gateway's JSON marshaler: runtime.JSONPb with the fabric's
// limits on request bodies.
type fabricJSON struct {
	*runtime.JSONPb
}

// NewDecoder reads the whole body (limitBody bounds it), refuses it when it nests
// deeper than MaxBodyDepth, and decodes it as JSONPb does. An empty body is
// io.EOF, which the gateway treats as an empty request, as before.
func (j fabricJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		data, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if len(data) == 0 {
			return io.EOF
		}
		if err := CheckJSONDepth(data, MaxBodyDepth); err != nil {
			return err
		}
		return j.Unmarshal(data, v)
	})
}
