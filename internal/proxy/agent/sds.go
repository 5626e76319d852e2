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

	"google.golang.org/protobuf/types/known/anypb"

	"github.com/mast-mesh/mast/internal/proxy/rpc"
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
// encoded with xdswire (and secretwire.go) and served by mast-proxy's own
// gRPC server (rpc.Server).
type SDS struct {
	src SecretSource
}

// NewSDS returns an SDS service over src.
func NewSDS(src SecretSource) *SDS { return &SDS{src: src} }

// The service's methods (envoy.service.secret.v3.SecretDiscoveryService);
// DeltaSecrets is not offered (Unimplemented, as the generated stub's
// default answered).
const (
	fetchSecrets  = "/envoy.service.secret.v3.SecretDiscoveryService/FetchSecrets"
	streamSecrets = "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets"
)

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
	check := func(ss *rpc.ServerStream) error {
		if tokenFile == "" {
			return nil
		}
		return checkBearer(ss.Metadata(), tokenFile)
	}
	srv := rpc.NewServer()
	srv.Handle(fetchSecrets, func(ss *rpc.ServerStream) error {
		if err := check(ss); err != nil {
			return err
		}
		raw, err := ss.Recv()
		if err != nil {
			return rpc.Errorf(rpc.Internal, "sds: %v", err)
		}
		req, err := xdswire.DecodeRequest(raw)
		if err != nil {
			return rpc.Errorf(rpc.Internal, "grpc: error unmarshalling request: %v", err)
		}
		resp, err := s.FetchSecrets(ss.Context(), req)
		if err != nil {
			return err
		}
		return ss.Send(resp.Marshal())
	})
	srv.Handle(streamSecrets, func(ss *rpc.ServerStream) error {
		if err := check(ss); err != nil {
			return err
		}
		return s.StreamSecrets(ss)
	})
	return srv.Serve(ctx, l)
}

// checkBearer compares the call's bearer token with tokenFile's content.
func checkBearer(md []rpc.Header, tokenFile string) error {
	data, err := os.ReadFile(tokenFile)
	want := strings.TrimSpace(string(data))
	if err != nil || want == "" {
		return rpc.Errorf(rpc.Unauthenticated, "sds: the token file is missing or empty; refusing")
	}
	var vals []string
	for _, h := range md {
		if h.Name == "authorization" {
			vals = append(vals, h.Value)
		}
	}
	if len(vals) != 1 {
		return rpc.Errorf(rpc.Unauthenticated, `sds: send "authorization: Bearer <token>"`)
	}
	scheme, got, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(want)) != 1 {
		return rpc.Errorf(rpc.Unauthenticated, "sds: wrong token")
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
		return nil, rpc.Errorf(rpc.Unavailable, "sds: no workload certificate yet")
	}
	return s.response(req.ResourceNames, 0)
}

func checkType(req *xdswire.Request) error {
	if t := req.TypeURL; t != "" && t != SecretType {
		return rpc.Errorf(rpc.InvalidArgument, "sds: type %q, want %s", t, SecretType)
	}
	return nil
}

// StreamSecrets is SDS state of the world: it answers each new subscription
// and pushes every renewal to the names subscribed.
func (s *SDS) StreamSecrets(stream *rpc.ServerStream) error {
	ctx := stream.Context()
	reqs := make(chan *xdswire.Request)
	errc := make(chan error, 1)
	go func() {
		for {
			raw, err := stream.Recv()
			if err != nil {
				errc <- err
				return
			}
			r, err := xdswire.DecodeRequest(raw)
			if err != nil {
				errc <- rpc.Errorf(rpc.Internal, "grpc: error unmarshalling request: %v", err)
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
				return rpc.Errorf(rpc.Internal, "sds: %v", err)
			}
			if err := stream.Send(resp.Marshal()); err != nil {
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
