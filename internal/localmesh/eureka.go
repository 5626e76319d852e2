package localmesh

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mast-mesh/mast/internal/registry/eureka"
)

// eurekaRenewal is the registrator's heartbeat period and eurekaLease the
// lease it asks for: Eureka clients' defaults (renewalIntervalInSecs 30,
// durationInSecs 90).
const (
	eurekaRenewal = 30 * time.Second
	eurekaLease   = 90 * time.Second
	eurekaRetry   = 2 * time.Second
)

// eurekaServer is the Eureka server `mast up --platform eureka` runs: Mast's
// protocol-faithful test server (test/eurekaserver), a program of its own
// (Programs["eureka-server"]) since no Eureka server can be obtained here and
// a test double does not belong in Mast's binaries.
func eurekaServer(addr string) Proc {
	return Proc{Name: "eureka", Program: "eureka-server", Args: []string{"--addr", addr}}
}

// eurekaVIP is the vipAddress a workload registers under, and so its
// service's hostname in mastd's Eureka registry. Bookinfo's ServiceEntries
// select the instances by their labels, so routing files naming `reviews`
// work unchanged.
func eurekaVIP(service string) string { return service + ".eureka" }

// eurekaInstance is r as a Eureka client registers it: the workload's labels,
// protocol, service account and namespace as metadata.
func eurekaInstance(r registration, now time.Time) *eureka.Instance {
	md := maps.Clone(r.Labels)
	if md == nil {
		md = map[string]string{}
	}
	md[eureka.MetaProtocol], md[eureka.MetaServiceAccount], md[eureka.MetaNamespace] = r.Protocol, r.ServiceAccount, r.Namespace
	return &eureka.Instance{
		InstanceID: r.ID, HostName: r.Address, App: strings.ToUpper(r.Service), IPAddr: r.Address, Status: eureka.StatusUp,
		Port: eureka.Port{Number: r.Port, Enabled: true}, SecurePort: eureka.Port{Number: 443},
		DataCenterInfo: eureka.DataCenterInfo{Class: "com.netflix.appinfo.InstanceInfo$DefaultDataCenterInfo", Name: "MyOwn"},
		LeaseInfo:      eureka.LeaseInfo{RenewalIntervalInSecs: int(eurekaRenewal / time.Second), DurationInSecs: int(eurekaLease / time.Second)},
		Metadata:       md, VIPAddress: eurekaVIP(r.Service),
		LastUpdated: now.UnixMilli(), LastDirty: now.UnixMilli(),
	}
}

// eurekaRegistrator registers workloads in a Eureka server and keeps their
// leases, as each workload's Eureka client would: a heartbeat every
// renewal period, and a new registration when a heartbeat is answered 404
// (the server no longer knows the instance: it was evicted, cancelled, or
// the server restarted).
type eurekaRegistrator struct {
	url    string // API base, http://HOST:PORT/eureka/v2
	client *http.Client
	log    *slog.Logger
	ins    []*eureka.Instance
}

func newEurekaRegistrator(url string, regs []registration, log *slog.Logger) *eurekaRegistrator {
	if log == nil {
		log = slog.Default()
	}
	e := &eurekaRegistrator{url: strings.TrimRight(url, "/"), client: &http.Client{Timeout: 5 * time.Second}, log: log}
	now := time.Now()
	for _, r := range regs {
		e.ins = append(e.ins, eurekaInstance(r, now))
	}
	return e
}

// registerAll registers every instance, retrying until the server answers
// or ctx ends.
func (e *eurekaRegistrator) registerAll(ctx context.Context) error {
	for _, in := range e.ins {
		for {
			err := e.register(ctx, in)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("registering %s in eureka at %s: %w", in.InstanceID, e.url, err)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// run renews the leases until ctx ends. A round with a failed heartbeat
// is retried after eurekaRetry rather than a whole renewal period, so that
// a server that was unreachable for a while sees the leases renewed before
// they expire.
func (e *eurekaRegistrator) run(ctx context.Context) {
	wait := eurekaRenewal
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = eurekaRenewal
		for _, in := range e.ins {
			if err := e.renew(ctx, in); err != nil && ctx.Err() == nil {
				e.log.Warn("eureka heartbeat failed", "instance", in.InstanceID, "err", err)
				wait = eurekaRetry
			}
		}
	}
}

func (e *eurekaRegistrator) register(ctx context.Context, in *eureka.Instance) error {
	body, err := json.Marshal(map[string]any{"instance": in})
	if err != nil {
		return err
	}
	code, err := e.do(ctx, http.MethodPost, "/apps/"+in.App, body)
	if err == nil && code != http.StatusNoContent && code != http.StatusOK {
		err = fmt.Errorf("POST /apps/%s answered %d", in.App, code)
	}
	return err
}

// renew is a heartbeat; a 404 registers the instance again.
func (e *eurekaRegistrator) renew(ctx context.Context, in *eureka.Instance) error {
	path := "/apps/" + in.App + "/" + in.InstanceID + "?status=UP&lastDirtyTimestamp=" + strconv.FormatInt(in.LastDirty, 10)
	code, err := e.do(ctx, http.MethodPut, path, nil)
	switch {
	case err != nil:
		return err
	case code == http.StatusNotFound:
		e.log.Info("eureka no longer knows the instance: registering it again", "instance", in.InstanceID)
		return e.register(ctx, in)
	case code != http.StatusOK:
		return fmt.Errorf("PUT /apps/%s/%s answered %d", in.App, in.InstanceID, code)
	}
	return nil
}

func (e *eurekaRegistrator) do(ctx context.Context, method, path string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	return resp.StatusCode, nil
}
