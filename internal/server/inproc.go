package server

import (
	"context"
	"fmt"
	"sync"

	"github.com/fullstorydev/grpchan"
	"github.com/fullstorydev/grpchan/inprocgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// local is a service's in-process connection: calls made on it run the service's
// handlers in this process, without a socket or serialisation, through the same
// interceptor chain as calls arriving on the gRPC listener (the REST gateway and
// peer services in the same process call through it; see Server.Local).
//
// It is github.com/fullstorydev/grpchan's inprocgrpc.Channel, which gives the handler
// what a transport would: the caller's outgoing metadata as incoming metadata, none of
// the caller's context values (deadline and cancellation are kept), a copy of every
// message both ways (a handler may keep or change its request, a caller its
// response), response headers and trailers through grpc.Header/grpc.Trailer, status
// errors as they were returned, and the otelgrpc client and server stats handlers (so
// the same spans, linked through the propagated trace context). In front of the chain,
// local adds what the listener does before any interceptor: the request size limit
// (MaxRecvMsgSize) and, while the server stops, refusing new calls and waiting for
// those in flight (GracefulStop).
//
// What differs from a call over the listener: the handler's incoming metadata has no
// transport keys (":authority", "content-type", "user-agent"), its peer is
// "inproc", and responses are not bounded by the client's receive limit (they come
// from this process's own handlers).
type local struct {
	ch      *inprocgrpc.Channel
	reg     grpc.ServiceRegistrar // ch behind the interceptor chain
	maxRecv int

	mu       sync.RWMutex
	closed   bool
	inflight sync.WaitGroup
	// hardStop is cancelled when the server stops without waiting any longer: the
	// contexts of calls still running end with it, as grpc.Server.Stop ends theirs.
	hardStop   context.Context
	cancelHard context.CancelFunc
}

func newLocal(unary []grpc.UnaryServerInterceptor, stream []grpc.StreamServerInterceptor, maxRecv int) *local {
	l := &local{maxRecv: maxRecv}
	l.hardStop, l.cancelHard = context.WithCancel(context.Background())
	l.ch = (&inprocgrpc.Channel{}).
		WithCloner(protoCloner{}).
		WithServerStatsHandler(otelgrpc.NewServerHandler()).
		WithClientStatsHandler(otelgrpc.NewClientHandler())
	l.reg = grpchan.WithStreamInterceptors(
		grpchan.WithUnaryInterceptors(l.ch, append([]grpc.UnaryServerInterceptor{l.unaryTransport}, unary...)...),
		append([]grpc.StreamServerInterceptor{l.streamTransport}, stream...)...)
	return l
}

// errShuttingDown is what a call made while the server stops gets: UNAVAILABLE, as a
// call to a listener that is closing.
var errShuttingDown = status.Error(codes.Unavailable, "the service is shutting down")

// enter counts a call in, or refuses it once the server is stopping.
func (l *local) enter() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return false
	}
	l.inflight.Add(1)
	return true
}

// close refuses new calls and waits for those in flight until ctx ends; then their
// contexts are cancelled.
func (l *local) close(ctx context.Context) {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	done := make(chan struct{})
	go func() { l.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		l.cancelHard()
	}
}

// checkSize is the gRPC server's receive limit: a request over it is refused with the
// message the transport gives.
func (l *local) checkSize(m any) error {
	if l.maxRecv <= 0 {
		return nil
	}
	pm, ok := m.(proto.Message)
	if !ok {
		return nil
	}
	if n := proto.Size(pm); n > l.maxRecv {
		return status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, l.maxRecv)
	}
	return nil
}

// unaryTransport runs outside the chain, where the listener's transport would: a
// refused call is not counted or logged by the chain, as over the network.
func (l *local) unaryTransport(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if !l.enter() {
		return nil, errShuttingDown
	}
	defer l.inflight.Done()
	if err := l.checkSize(req); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(l.hardStop, cancel)()
	return h(ctx, req)
}

func (l *local) streamTransport(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	if !l.enter() {
		return errShuttingDown
	}
	defer l.inflight.Done()
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	defer context.AfterFunc(l.hardStop, cancel)()
	return h(srv, &localStream{ServerStream: ss, ctx: ctx, l: l})
}

// localStream is a server stream whose received messages obey the size limit and
// whose context ends at a hard stop.
type localStream struct {
	grpc.ServerStream
	ctx context.Context
	l   *local
}

func (s *localStream) Context() context.Context { return s.ctx }

func (s *localStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return s.l.checkSize(m)
}

// registrars registers every service on each of regs.
type registrars []grpc.ServiceRegistrar

func (r registrars) RegisterService(desc *grpc.ServiceDesc, impl any) {
	for _, reg := range r {
		reg.RegisterService(desc, impl)
	}
}

// protoCloner copies messages between caller and handler with google.golang.org/protobuf
// directly. grpchan's default (inprocgrpc.ProtoCloner) goes through the v1 API and
// jhump/protoreflect's dynamic merge, which cost about 6% of the fabric's CPU on the
// decision benchmark; anything that is not a proto message still goes to it.
type protoCloner struct{}

func (protoCloner) Copy(out, in any) error {
	o, okOut := out.(proto.Message)
	i, okIn := in.(proto.Message)
	if !okOut || !okIn {
		return inprocgrpc.ProtoCloner{}.Copy(out, in)
	}
	if o.ProtoReflect().Descriptor() != i.ProtoReflect().Descriptor() {
		return fmt.Errorf("inproc: cannot copy %s into %s", i.ProtoReflect().Descriptor().FullName(), o.ProtoReflect().Descriptor().FullName())
	}
	proto.Reset(o)
	proto.Merge(o, i)
	return nil
}

func (protoCloner) Clone(in any) (any, error) {
	if m, ok := in.(proto.Message); ok {
		return proto.Clone(m), nil
	}
	return inprocgrpc.ProtoCloner{}.Clone(in)
}

// localConn is the client side of the in-process connection. A call made once the
// server is stopping is refused here, before it reaches the channel, with the same
// UNAVAILABLE the transport interceptors give: a stream refused inside the channel may
// reach a client that is already reading as a bare EOF instead of its status.
type localConn struct{ l *local }

func (c localConn) stopping() bool {
	c.l.mu.RLock()
	defer c.l.mu.RUnlock()
	return c.l.closed
}

func (c localConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if c.stopping() {
		return errShuttingDown
	}
	return c.l.ch.Invoke(ctx, method, args, reply, opts...)
}

func (c localConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if c.stopping() {
		return nil, errShuttingDown
	}
	return c.l.ch.NewStream(ctx, desc, method, opts...)
}
