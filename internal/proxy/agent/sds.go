package agent

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/xdswire"
)

// SecretType is the SDS type URL.
const SecretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

// SecretSource is what the SDS server serves from; *Agent implements it.
type SecretSource interface {
	Secrets() *Secrets
	Changed() <-chan struct{}
}

var _ SecretSource = (*Agent)(nil)

// SDS serves the agent's secrets to Envoy over SDS v3 (state of the world):
// "default" (certificate chain and key) and "ROOTCA" (trust bundle). It
// pushes new versions as the certificate is renewed. Its messages are
// encoded with xdswire (and secretwire.go), so the server it is registered
// on must use xdswire.Codec (Serve does).
type SDS struct {
	src SecretSource
}

// NewSDS returns an SDS service over src.
func NewSDS(src SecretSource) *SDS { return &SDS{src: src} }

// sdsService is envoy.service.secret.v3.SecretDiscoveryService's
// description, as its generated stub has it, with handlers that move the
// messages as bytes. DeltaSecrets is not offered (gRPC answers
// Unimplemented, as the generated stub's default did).
func sdsService() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "envoy.service.secret.v3.SecretDiscoveryService",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "FetchSecrets", Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
			in := &xdswire.Request{}
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, req any) (any, error) {
				resp, err := srv.(*SDS).FetchSecrets(ctx, req.(*xdswire.Request))
				if err != nil {
					return nil, err
				}
				return resp.Marshal(), nil
			}
			if icpt == nil {
				return h(ctx, in)
			}
			return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/envoy.service.secret.v3.SecretDiscoveryService/FetchSecrets"}, h)
		}}},
		Streams: []grpc.StreamDesc{{StreamName: "StreamSecrets", ServerStreams: true, ClientStreams: true,
			Handler: func(srv any, st grpc.ServerStream) error { return srv.(*SDS).StreamSecrets(st) }}},
		Metadata: "envoy/service/secret/v3/sds.proto",
	}
}

// Register adds the service to g, which must have been created with
// grpc.ForceServerCodecV2(xdswire.Codec{}).
func (s *SDS) Register(g *grpc.Server) { g.RegisterService(sdsService(), s) }

// ListenSDS listens on addr. SDS hands out the workload's private key, so
// only the workload's own user may reach it:
//
//   - "unix:///path/to/socket" (Istio's ./var/run/secrets/workload-spiffe-uds/socket),
//     the recommended form: the socket's directory is created mode 0700 when
//     missing, the socket is made mode 0600, and a stale socket is removed;
//   - host:port only on a loopback address and with tokenFile set: every
//     call must then carry "authorization: Bearer <token>" (Envoy's
//     grpc_service initial_metadata), checked by Serve.
func ListenSDS(addr, tokenFile string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if path == "" {
			return nil, fmt.Errorf("sds: %q: empty socket path", addr)
		}
		if dir := filepath.Dir(path); dir != "" {
			if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
				if err := os.MkdirAll(dir, 0o700); err != nil {
					return nil, fmt.Errorf("sds: socket directory: %w", err)
				}
			}
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("sds: remove stale socket: %w", err)
		}
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("sds: %w", err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			l.Close()
			return nil, fmt.Errorf("sds: socket permissions: %w", err)
		}
		return l, nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("sds: address %q: want unix:///path or host:port: %w", addr, err)
	}
	if ip, err := netip.ParseAddr(host); err != nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("sds: TCP address %q is not a loopback IP address; SDS serves private keys: use unix:///path", addr)
	}
	if tokenFile == "" {
		return nil, fmt.Errorf("sds: TCP address %q needs a token file (--sds-token-file): anyone on the machine could fetch the private key", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sds: %w", err)
	}
	return l, nil
}

// Serve serves SDS on l until ctx ends. With tokenFile set (required for
// TCP by ListenSDS), every call must carry "authorization: Bearer <token>"
// matching the file's content, read at each call.
func (s *SDS) Serve(ctx context.Context, l net.Listener, tokenFile string) error {
	var opts []grpc.ServerOption
	if tokenFile != "" {
		check := func(ctx context.Context) error { return checkBearer(ctx, tokenFile) }
		opts = append(opts,
			grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				if err := check(ctx); err != nil {
					return nil, err
				}
				return h(ctx, req)
			}),
			grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
				if err := check(ss.Context()); err != nil {
					return err
				}
				return h(srv, ss)
			}))
	}
	opts = append(opts, grpc.ForceServerCodecV2(xdswire.Codec{}))
	g := grpc.NewServer(opts...)
	s.Register(g)
	stop := context.AfterFunc(ctx, g.Stop)
	defer stop()
	err := g.Serve(l)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// checkBearer compares the call's bearer token with tokenFile's content.
func checkBearer(ctx context.Context, tokenFile string) error {
	data, err := os.ReadFile(tokenFile)
	want := strings.TrimSpace(string(data))
	if err != nil || want == "" {
		return status.Error(codes.Unauthenticated, "sds: the token file is missing or empty; refusing")
	}
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) != 1 {
		return status.Error(codes.Unauthenticated, `sds: send "authorization: Bearer <token>"`)
	}
	scheme, got, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) != 1 {
		return status.Error(codes.Unauthenticated, "sds: wrong token")
	}
	return nil
}

// secretResources returns the requested secrets that exist, in request order.
func secretResources(sec *Secrets, names []string) ([]*anypb.Any, error) {
	out := make([]*anypb.Any, 0, len(names))
	for _, n := range names {
		var v []byte
		switch n {
		case WorkloadSecret:
			v = tlsCertificateSecret(n, sec.CertPEM, sec.KeyPEM)
		case RootSecret:
			v = validationContextSecret(n, sec.RootsPEM)
		default:
			continue
		}
		out = append(out, &anypb.Any{TypeUrl: SecretType, Value: v})
	}
	return out, nil
}

func (s *SDS) response(names []string, nonce int) (*xdswire.Response, error) {
	sec := s.src.Secrets()
	res, err := secretResources(sec, names)
	if err != nil {
		return nil, err
	}
	return &xdswire.Response{VersionInfo: strconv.FormatUint(sec.Version, 10), Resources: res,
		TypeURL: SecretType, Nonce: strconv.Itoa(nonce)}, nil
}

// FetchSecrets answers one request with the current secrets.
func (s *SDS) FetchSecrets(ctx context.Context, req *xdswire.Request) (*xdswire.Response, error) {
	if err := checkType(req); err != nil {
		return nil, err
	}
	if s.src.Secrets() == nil {
		return nil, status.Error(codes.Unavailable, "sds: no workload certificate yet")
	}
	return s.response(req.ResourceNames, 0)
}

func checkType(req *xdswire.Request) error {
	if t := req.TypeURL; t != "" && t != SecretType {
		return status.Errorf(codes.InvalidArgument, "sds: type %q, want %s", t, SecretType)
	}
	return nil
}

// StreamSecrets is SDS state of the world: it answers each new subscription
// and pushes every renewal to the names subscribed.
func (s *SDS) StreamSecrets(stream grpc.ServerStream) error {
	ctx := stream.Context()
	reqs := make(chan *xdswire.Request)
	errc := make(chan error, 1)
	go func() {
		for {
			r := &xdswire.Request{}
			if err := stream.RecvMsg(r); err != nil {
				errc <- err
				return
			}
			select {
			case reqs <- r:
			case <-ctx.Done():
				return
			}
		}
	}()
	var names []string
	nonce, sentVersion := 0, uint64(0)
	lastNonce := ""
	for {
		changed := s.src.Changed()
		sec := s.src.Secrets()
		if sec != nil && len(names) > 0 && sec.Version != sentVersion {
			nonce++
			resp, err := s.response(names, nonce)
			if err != nil {
				return status.Errorf(codes.Internal, "sds: %v", err)
			}
			if err := stream.SendMsg(resp.Marshal()); err != nil {
				return err
			}
			sentVersion, lastNonce = sec.Version, resp.Nonce
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case <-changed:
		case r := <-reqs:
			if err := checkType(r); err != nil {
				return err
			}
			if r.ResponseNonce != "" && r.ResponseNonce != lastNonce {
				continue // an answer to an older response
			}
			if r.ErrorDetail != nil {
				continue // NACK: keep the version, push the next one
			}
			if n := r.ResourceNames; !slices.Equal(n, names) {
				names = slices.Clone(n)
				sentVersion = 0 // a new subscription gets an answer
			}
		}
	}
}
