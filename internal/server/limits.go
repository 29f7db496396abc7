package server

import (
	"context"
	"fmt"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// Limits on the open JSON of every request (google.protobuf.Struct, Value and
// ListValue fields: manifest parameters, metadata, signals), for gRPC and REST
// alike. They match the policy engine's limits on parameters, so that nothing it
// would refuse deeper down gets that far; each violation is INVALID_ARGUMENT
// (HTTP 400) naming the field and the limit.
const (
	// MaxJSONDepth bounds the nesting of objects and arrays in one open JSON field.
	MaxJSONDepth = 32
	// MaxJSONValues bounds the values (objects, arrays and scalars) in one open
	// JSON field.
	MaxJSONValues = 10_000
	// MaxJSONString bounds one string (or object key) in open JSON, in bytes.
	MaxJSONString = 64 << 10
)

var (
	structName    = (&structpb.Struct{}).ProtoReflect().Descriptor().FullName()
	valueName     = (&structpb.Value{}).ProtoReflect().Descriptor().FullName()
	listValueName = (&structpb.ListValue{}).ProtoReflect().Descriptor().FullName()
)

// CheckJSONLimits checks every open JSON field of m against MaxJSONDepth,
// MaxJSONValues and MaxJSONString, and returns an INVALID_ARGUMENT status naming
// the first field over a limit ("manifest.parameters: nesting depth exceeds 32").
// It walks m without recursion limits of its own: m was decoded, so it is finite,
// and the walk stops descending at the first limit.
func CheckJSONLimits(m proto.Message) error {
	if m == nil {
		return nil
	}
	return checkMessage(m.ProtoReflect(), "")
}

func checkMessage(m protoreflect.Message, path string) error {
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		p := fd.TextName()
		if path != "" {
			p = path + "." + p
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = checkField(l.Get(i).Message(), p+"["+strconv.Itoa(i)+"]")
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					err = checkField(mv.Message(), p+"["+strconv.Quote(k.String())+"]")
					return err == nil
				})
			}
		default:
			err = checkField(v.Message(), p)
		}
		return err == nil
	})
	return err
}

// checkField checks a message field: open JSON against the limits, any other
// message by its own fields.
func checkField(m protoreflect.Message, path string) error {
	switch m.Descriptor().FullName() {
	case structName, valueName, listValueName:
		c := jsonCounter{path: path}
		return c.value(m.Interface(), 0)
	}
	return checkMessage(m, path)
}

// jsonCounter walks one open JSON field.
type jsonCounter struct {
	path   string
	values int
}

func (c *jsonCounter) fail(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s: %s", c.path, fmt.Sprintf(format, a...))
}

// value checks v, a Struct, Value or ListValue at container depth depth.
func (c *jsonCounter) value(v proto.Message, depth int) error {
	c.values++
	if c.values > MaxJSONValues {
		return c.fail("more than %d values", MaxJSONValues)
	}
	switch t := v.(type) {
	case *structpb.Struct:
		if depth+1 > MaxJSONDepth {
			return c.fail("nesting depth exceeds %d", MaxJSONDepth)
		}
		for k, e := range t.GetFields() {
			if len(k) > MaxJSONString {
				return c.fail("a key longer than %d bytes", MaxJSONString)
			}
			if err := c.value(e, depth+1); err != nil {
				return err
			}
		}
	case *structpb.ListValue:
		if depth+1 > MaxJSONDepth {
			return c.fail("nesting depth exceeds %d", MaxJSONDepth)
		}
		for _, e := range t.GetValues() {
			if err := c.value(e, depth+1); err != nil {
				return err
			}
		}
	case *structpb.Value:
		c.values-- // a Value only wraps what it holds
		switch k := t.GetKind().(type) {
		case *structpb.Value_StructValue:
			return c.value(k.StructValue, depth)
		case *structpb.Value_ListValue:
			return c.value(k.ListValue, depth)
		case *structpb.Value_StringValue:
			c.values++
			if len(k.StringValue) > MaxJSONString {
				return c.fail("a string longer than %d bytes", MaxJSONString)
			}
		default:
			c.values++
		}
	}
	return nil
}

// jsonLimitsUnary refuses requests whose open JSON is over a limit.
func jsonLimitsUnary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if m, ok := req.(proto.Message); ok {
			if err := CheckJSONLimits(m); err != nil {
				return nil, err
			}
		}
		return h(ctx, req)
	}
}

// jsonLimitsStream applies the same check to every message a stream receives.
func jsonLimitsStream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return h(srv, &limitedStream{ServerStream: ss})
	}
}

type limitedStream struct{ grpc.ServerStream }

func (s *limitedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if pm, ok := m.(proto.Message); ok {
		return CheckJSONLimits(pm)
	}
	return nil
}
