package controlplane

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/mixer"
	"github.com/mast-mesh/mast/internal/mixer/adapter"
)

// MixerConfig configures Istio's Mixer inside mastd.
type MixerConfig struct {
	Enabled bool
	// Addr is where istio.mixer.v1.Mixer is served over mTLS (Istio's 9091).
	Addr string
	// QuotaPrefetch is MeshConfig's MixerQuotaPrefetch.
	QuotaPrefetch bool
}

// mixerServer is the Mixer: its service (compiled from each config
// snapshot) and its gRPC server, which requires a client certificate from
// the mesh CA.
type mixerServer struct {
	cfg MixerConfig
	svc *mixer.Service
	gs  *grpc.Server
	lis net.Listener
	log *slog.Logger
}

func newMixer(cfg Config, log *slog.Logger) *mixerServer {
	env := adapter.Env{Logger: log, Stdout: os.Stdout, HTTP: &http.Client{Timeout: 10 * time.Second}, Now: time.Now}
	svc := mixer.NewService(mixer.Options{ConfigNamespace: cfg.Mesh.RootNamespace, Env: env}, log)
	return &mixerServer{cfg: cfg.Mixer, svc: svc, log: log}
}

// listen binds the Mixer's port with mastd's serving certificate; every
// caller must present a certificate the mesh CA issued.
func (m *mixerServer) listen(authority *ca.CA) error {
	base, err := authority.ServerTLSConfig("istio-policy.istio-system.svc", "istiod.istio-system.svc", "mastd", "localhost", "127.0.0.1")
	if err != nil {
		return fmt.Errorf("mixer: serving certificate: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		c, err := base.GetConfigForClient(h)
		if err != nil {
			return nil, err
		}
		c = c.Clone()
		c.ClientAuth = tls.RequireAndVerifyClientCert
		return c, nil
	}}
	if m.lis, err = net.Listen("tcp", m.cfg.Addr); err != nil {
		return fmt.Errorf("mixer listener: %w", err)
	}
	m.gs = grpc.NewServer(grpc.Creds(credentials.NewTLS(tc)),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 15 * time.Second, PermitWithoutStream: true}))
	m.svc.Register(m.gs)
	return nil
}

func (m *mixerServer) stop() {
	if m.gs != nil {
		m.gs.GracefulStop()
	}
	if err := m.svc.Close(); err != nil {
		m.log.Warn("closing the mixer's handlers", "err", err)
	}
}
