package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
)

// fabricJSON is the gateway's JSON marshaler: runtime.JSONPb with the fabric's
// limits on request bodies, and signed documents shown exactly as signed.
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

// signedMessages are the messages whose RFC 8785 canonical JSON is signed and hashed
// (canonical.Proto: proto names, no unpopulated fields). A response shows each of them
// exactly as signed, without the unpopulated fields ("regions": [], "consent": null)
// every other message shows, so that sha256(canonical(manifest as returned)) is the
// manifest_sha256 beside it and `cosign verify-blob` accepts its canonical bytes.
var signedMessages = map[protoreflect.FullName]bool{
	(&typesv1.Manifest{}).ProtoReflect().Descriptor().FullName(): true,
}

// signedJSON is the form signed messages are marshaled in: canonical.Proto's.
var signedJSON = protojson.MarshalOptions{UseProtoNames: true}

// Marshal is JSONPb's, except that signed messages anywhere in v are marshaled as
// signed (signedMessages).
func (j fabricJSON) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok || !holdsSigned(m.ProtoReflect().Descriptor()) {
		return j.JSONPb.Marshal(v)
	}
	return j.marshalMessage(m.ProtoReflect())
}

// NewEncoder encodes with Marshal, one value per line as JSONPb does.
func (j fabricJSON) NewEncoder(w io.Writer) runtime.Encoder {
	return runtime.EncoderFunc(func(v any) error {
		b, err := j.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		_, err = w.Write(j.Delimiter())
		return err
	})
}

// marshalMessage marshals m: as signed when it is a signed message, as JSONPb does
// when it holds none, and otherwise member by member, in JSONPb's order and with its
// bytes, each member that holds a signed message marshaled by marshalMessage again
// (an unset one as JSONPb shows it: null or []).
func (j fabricJSON) marshalMessage(m protoreflect.Message) ([]byte, error) {
	d := m.Descriptor()
	switch {
	case signedMessages[d.FullName()]:
		return signedJSON.Marshal(m.Interface())
	case !holdsSigned(d):
		return j.JSONPb.Marshal(m.Interface())
	}
	// Everything but the fields that hold signed messages, marshaled by JSONPb (a
	// shallow copy: values are shared, not cloned); those fields are added below.
	rest := m.New()
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if !holdsSignedField(fd) {
			rest.Set(fd, v)
		}
		return true
	})
	full, err := j.JSONPb.Marshal(rest.Interface())
	if err != nil {
		return nil, err
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(full, &members); err != nil {
		return nil, fmt.Errorf("server: re-read %s: %w", d.FullName(), err)
	}
	var b bytes.Buffer
	b.WriteByte('{')
	fields := d.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		name := fd.JSONName()
		if j.UseProtoNames {
			name = string(fd.Name())
		}
		raw, ok := members[name]
		if !ok {
			continue
		}
		if holdsSignedField(fd) && m.Has(fd) {
			if raw, err = j.marshalField(m, fd); err != nil {
				return nil, err
			}
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(name)
		b.Write(key)
		b.WriteByte(':')
		b.Write(raw)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// marshalField marshals the message field fd of m (singular or repeated).
func (j fabricJSON) marshalField(m protoreflect.Message, fd protoreflect.FieldDescriptor) ([]byte, error) {
	if !fd.IsList() {
		return j.marshalMessage(m.Get(fd).Message())
	}
	l := m.Get(fd).List()
	var b bytes.Buffer
	b.WriteByte('[')
	for i := 0; i < l.Len(); i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		e, err := j.marshalMessage(l.Get(i).Message())
		if err != nil {
			return nil, err
		}
		b.Write(e)
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

// holdsSignedField reports whether fd is a singular or repeated message field that
// can hold a signed message.
func holdsSignedField(fd protoreflect.FieldDescriptor) bool {
	return fd.Message() != nil && !fd.IsMap() && holdsSigned(fd.Message())
}

// holdsCache memoises holdsSigned per message type.
var holdsCache sync.Map // protoreflect.FullName -> bool

// holdsSigned reports whether a message of type d is a signed message or can hold one
// in a singular or repeated field (maps are not looked into: no API has a map of
// signed messages).
func holdsSigned(d protoreflect.MessageDescriptor) bool {
	if v, ok := holdsCache.Load(d.FullName()); ok {
		return v.(bool)
	}
	r := holds(d, map[protoreflect.FullName]bool{})
	holdsCache.Store(d.FullName(), r)
	return r
}

func holds(d protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if signedMessages[d.FullName()] {
		return true
	}
	if seen[d.FullName()] {
		return false
	}
	seen[d.FullName()] = true
	fields := d.Fields()
	for i := 0; i < fields.Len(); i++ {
		if fd := fields.Get(i); fd.Message() != nil && !fd.IsMap() && holds(fd.Message(), seen) {
			return true
		}
	}
	return false
}
