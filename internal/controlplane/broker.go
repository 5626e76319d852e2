package controlplane

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/mast-mesh/mast/internal/broker"
	"github.com/mast-mesh/mast/internal/ca"
	"github.com/mast-mesh/mast/internal/config/store"
)

// BrokerConfig configures the Open Service Broker (--components broker).
type BrokerConfig struct {
	Enabled bool
	Addr    string // e.g. 127.0.0.1:15080
	// StateDir holds the broker's instances and bindings.
	StateDir string
	// ConfigFile names the plans (broker.LoadFileConfig); "" offers the defaults.
	ConfigFile string
	// CredentialsFile holds "username:password"; TokenFile a bearer token.
	CredentialsFile, TokenFile string
	// TLSCertFile and TLSKeyFile serve HTTPS from files; TLSMesh serves
	// HTTPS with a certificate from the mesh CA (needs --ca-dir).
	TLSCertFile, TLSKeyFile string
	TLSMesh                 bool
}

func (c *BrokerConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "broker-addr", "127.0.0.1:15080", "address of the Open Service Broker API (with --components ...,broker)")
	fs.StringVar(&c.StateDir, "broker-dir", "", "directory of the broker's instances and bindings (required with the broker)")
	fs.StringVar(&c.ConfigFile, "broker-config", "", "YAML file of the broker's plans (see docs/broker.md); default: two plans")
	fs.StringVar(&c.CredentialsFile, "broker-credentials", "", "file holding username:password for the broker's basic authentication")
	fs.StringVar(&c.TokenFile, "broker-token-file", "", "file holding a bearer token for the broker (instead of --broker-credentials)")
	fs.StringVar(&c.TLSCertFile, "broker-tls-cert", "", "serve the broker over TLS with this certificate (PEM) and --broker-tls-key")
	fs.StringVar(&c.TLSKeyFile, "broker-tls-key", "", "private key (PEM) for --broker-tls-cert")
	fs.BoolVar(&c.TLSMesh, "broker-tls-mesh", false, "serve the broker over TLS with a certificate from the mesh CA (needs --ca-dir)")
}

// brokerServer is the running broker and its HTTP server.
type brokerServer struct {
	b   *broker.Broker
	hs  *http.Server
	lis net.Listener
	tls bool
}

// newBroker builds the broker from its flags; it fails closed: without
// credentials, with half a TLS configuration, or TLS from a missing CA.
func newBroker(cfg Config, fs *store.File, authority *ca.CA, log *slog.Logger) (*brokerServer, error) {
	bc := cfg.Broker
	if bc.StateDir == "" {
		return nil, errors.New("broker: --broker-dir is required")
	}
	auth, err := broker.LoadAuth(bc.CredentialsFile, bc.TokenFile)
	if err != nil {
		return nil, err
	}
	var plans []broker.PlanConfig
	if bc.ConfigFile != "" {
		fc, err := broker.LoadFileConfig(bc.ConfigFile)
		if err != nil {
			return nil, err
		}
		plans = fc.Plans
	}
	var tlsCfg *tls.Config
	switch {
	case (bc.TLSCertFile == "") != (bc.TLSKeyFile == ""):
		return nil, errors.New("broker: --broker-tls-cert and --broker-tls-key go together")
	case bc.TLSCertFile != "" && bc.TLSMesh:
		return nil, errors.New("broker: --broker-tls-cert and --broker-tls-mesh exclude each other")
	case bc.TLSCertFile != "":
		pair, err := tls.LoadX509KeyPair(bc.TLSCertFile, bc.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("broker TLS: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	case bc.TLSMesh:
		if authority == nil {
			return nil, errors.New("broker: --broker-tls-mesh needs the CA (--ca-dir)")
		}
		hosts := []string{"mastd", "localhost", "127.0.0.1"}
		if host, _, _ := net.SplitHostPort(bc.Addr); host != "" && host != "127.0.0.1" {
			hosts = append(hosts, host)
		}
		if tlsCfg, err = authority.ServerTLSConfig(hosts...); err != nil {
			return nil, fmt.Errorf("broker TLS: %w", err)
		}
	}
	bcfg := broker.Config{
		Plans: plans, StateDir: bc.StateDir, ConfigDir: cfg.ConfigDir, Mesh: fs,
		TrustDomain: cfg.Mesh.TrustDomain, DomainSuffix: cfg.Mesh.DomainSuffix,
		Logger: log,
	}
	if authority != nil {
		bcfg.Issuer = authority
	}
	b, err := broker.New(bcfg)
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", bc.Addr)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("broker listener: %w", err)
	}
	if tlsCfg != nil {
		lis = tls.NewListener(lis, tlsCfg)
	}
	hs := &http.Server{Handler: b.Handler(auth), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, MaxHeaderBytes: 64 << 10}
	return &brokerServer{b: b, hs: hs, lis: lis, tls: tlsCfg != nil}, nil
}

// run serves until ctx is done, then stops operations in flight (they
// resume at the next start).
func (s *brokerServer) run(ctx context.Context) error {
	s.b.Resume()
	errc := make(chan error, 1)
	go func() { errc <- s.hs.Serve(s.lis) }()
	select {
	case err := <-errc:
		s.b.Close()
		return err
	case <-ctx.Done():
	}
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	s.hs.Shutdown(shutdownCtx)
	s.b.Close()
	return nil
}
