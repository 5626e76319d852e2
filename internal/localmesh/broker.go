package localmesh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/mast-mesh/mast/internal/broker"
)

// brokerUser is the username of the local mesh's broker credentials.
const brokerUser = "osb"

// prepareBroker makes STATE/broker with the broker's state directory and
// its credentials file (username:password, mode 0600, kept across runs)
// and returns mastd's flags for the broker.
func prepareBroker(stateDir, addr string) (args []string, credFile string, err error) {
	dir := filepath.Join(stateDir, "broker")
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return nil, "", err
	}
	credFile = filepath.Join(dir, "credentials")
	if _, err := os.Stat(credFile); errors.Is(err, fs.ErrNotExist) {
		var buf [18]byte
		if _, err := rand.Read(buf[:]); err != nil {
			return nil, "", err
		}
		if err := os.WriteFile(credFile, []byte(brokerUser+":"+hex.EncodeToString(buf[:])+"\n"), 0o600); err != nil {
			return nil, "", err
		}
	} else if err != nil {
		return nil, "", err
	}
	return []string{
		"--components", "pilot,galley,broker",
		"--broker-addr", addr,
		"--broker-dir", filepath.Join(dir, "state"),
		"--broker-credentials", credFile,
	}, credFile, nil
}

// ClientConfig is the file `mast up` writes for OSB clients and
// conformance checkers (docs/broker.md): where the broker is, how to
// authenticate, and the ids of its services and plans.
type ClientConfig struct {
	URL             string `json:"url"`
	APIVersion      string `json:"apiVersion"`
	Authentication  string `json:"authentication"`
	User            string `json:"user"`
	Password        string `json:"password"`
	CredentialsFile string `json:"credentialsFile"`
	// ServiceID and PlanIDs name one service to exercise (Bookinfo's
	// reviews when offered); Services lists the whole catalog.
	ServiceID string          `json:"serviceId"`
	PlanIDs   []string        `json:"planIds"`
	Services  []ClientService `json:"services"`
}

// ClientService is one catalog service in ClientConfig.
type ClientService struct {
	ID                   string       `json:"id"`
	Name                 string       `json:"name"`
	Bindable             bool         `json:"bindable"`
	InstancesRetrievable bool         `json:"instancesRetrievable"`
	BindingsRetrievable  bool         `json:"bindingsRetrievable"`
	Plans                []ClientPlan `json:"plans"`
}

// ClientPlan is one plan in ClientConfig.
type ClientPlan struct {
	ID              string                  `json:"id"`
	Name            string                  `json:"name"`
	Bindable        bool                    `json:"bindable"`
	PlanUpdateable  bool                    `json:"planUpdateable"`
	MaintenanceInfo *broker.MaintenanceInfo `json:"maintenanceInfo,omitempty"`
}

// writeClientConfig reads the broker's catalog and writes the client
// configuration file (mode 0600: it holds the password).
func writeClientConfig(ctx context.Context, url, credFile, path string) error {
	raw, err := os.ReadFile(credFile)
	if err != nil {
		return err
	}
	user, pass, _ := strings.Cut(strings.TrimSpace(string(raw)), ":")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v2/catalog", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(user, pass)
	req.Header.Set("X-Broker-API-Version", broker.APIVersion)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the broker's catalog: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the broker's catalog: %s: %s", resp.Status, body)
	}
	var cat struct {
		Services []struct {
			ID                   string `json:"id"`
			Name                 string `json:"name"`
			Bindable             bool   `json:"bindable"`
			InstancesRetrievable bool   `json:"instances_retrievable"`
			BindingsRetrievable  bool   `json:"bindings_retrievable"`
			Plans                []struct {
				ID              string                  `json:"id"`
				Name            string                  `json:"name"`
				Bindable        bool                    `json:"bindable"`
				PlanUpdateable  bool                    `json:"plan_updateable"`
				MaintenanceInfo *broker.MaintenanceInfo `json:"maintenance_info"`
			} `json:"plans"`
		} `json:"services"`
	}
	if err := json.Unmarshal(body, &cat); err != nil {
		return fmt.Errorf("the broker's catalog: %w", err)
	}
	cc := ClientConfig{URL: url, APIVersion: broker.APIVersion, Authentication: "basic", User: user, Password: pass, CredentialsFile: credFile, Services: []ClientService{}, PlanIDs: []string{}}
	for _, s := range cat.Services {
		cs := ClientService{ID: s.ID, Name: s.Name, Bindable: s.Bindable, InstancesRetrievable: s.InstancesRetrievable, BindingsRetrievable: s.BindingsRetrievable}
		for _, p := range s.Plans {
			cs.Plans = append(cs.Plans, ClientPlan{ID: p.ID, Name: p.Name, Bindable: p.Bindable, PlanUpdateable: p.PlanUpdateable, MaintenanceInfo: p.MaintenanceInfo})
		}
		cc.Services = append(cc.Services, cs)
		if cc.ServiceID == "" || s.Name == "reviews.default" {
			cc.ServiceID, cc.PlanIDs = s.ID, nil
			for _, p := range s.Plans {
				cc.PlanIDs = append(cc.PlanIDs, p.ID)
			}
		}
	}
	out, err := json.MarshalIndent(cc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(out, '\n'), 0o600)
}
