package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
)

// PlanConfig is one plan of the broker's configuration file. Every exported
// mesh service offers the plans its annotation names (all by default); a
// plan's id is derived from the service's id and the plan's name, so it is
// stable and unique per service as the specification requires.
type PlanConfig struct {
	Name        string         `yaml:"name" json:"name"`
	Description string         `yaml:"description" json:"description"`
	Free        *bool          `yaml:"free" json:"free,omitempty"`
	Bindable    *bool          `yaml:"bindable" json:"bindable,omitempty"`
	Metadata    map[string]any `yaml:"metadata" json:"metadata,omitempty"`
	// PlanUpdateable lets instances of this plan move to another plan.
	PlanUpdateable bool `yaml:"plan_updateable" json:"plan_updateable"`
	// BindingRotatable lets platforms rotate bindings (predecessor_binding_id).
	BindingRotatable bool `yaml:"binding_rotatable" json:"binding_rotatable"`
	// AsyncRequired makes every operation on instances of this plan
	// asynchronous: requests without accepts_incomplete=true get 422 AsyncRequired.
	AsyncRequired bool `yaml:"async_required" json:"async_required"`
	// CertificateTTL is the lifetime of a binding's client certificate.
	CertificateTTL         Duration         `yaml:"certificate_ttl" json:"certificate_ttl"`
	MaximumPollingDuration int              `yaml:"maximum_polling_duration" json:"maximum_polling_duration,omitempty"`
	MaintenanceInfo        *MaintenanceInfo `yaml:"maintenance_info" json:"maintenance_info,omitempty"`
	// Schemas are the plan's JSON schemas (the catalog's schemas object);
	// absent ones default to the schemas of the parameters Mast reads.
	Schemas *PlanSchemas `yaml:"schemas" json:"schemas,omitempty"`
}

// PlanSchemas is the catalog's schemas object, as written in the file.
type PlanSchemas struct {
	ServiceInstance *InstanceSchemas `yaml:"service_instance" json:"service_instance,omitempty"`
	ServiceBinding  *BindingSchemas  `yaml:"service_binding" json:"service_binding,omitempty"`
}

// InstanceSchemas are the schemas for creating and updating instances.
type InstanceSchemas struct {
	Create *InputSchema `yaml:"create" json:"create,omitempty"`
	Update *InputSchema `yaml:"update" json:"update,omitempty"`
}

// BindingSchemas is the schema for creating bindings.
type BindingSchemas struct {
	Create *InputSchema `yaml:"create" json:"create,omitempty"`
}

// InputSchema holds one JSON schema for parameters.
type InputSchema struct {
	Parameters map[string]any `yaml:"parameters" json:"parameters"`
}

// Duration is a time.Duration written as "1h30m" in the file.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// FileConfig is the broker's configuration file (mastd --broker-config).
type FileConfig struct {
	Plans []PlanConfig `yaml:"plans"`
}

// DefaultPlans are offered when no configuration file names plans: two
// plans that differ in the lifetime of bindings' client certificates, and
// can be switched between.
func DefaultPlans() []PlanConfig {
	mi := &MaintenanceInfo{Version: "1.0.0", Description: "Mast broker 1.0"}
	return []PlanConfig{
		{Name: "short-lived", Description: "mTLS access with client certificates valid for one hour", PlanUpdateable: true, BindingRotatable: true, CertificateTTL: Duration(time.Hour), MaintenanceInfo: mi},
		{Name: "long-lived", Description: "mTLS access with client certificates valid for one day", PlanUpdateable: true, BindingRotatable: true, CertificateTTL: Duration(24 * time.Hour), MaintenanceInfo: mi},
	}
}

// DefaultCertificateTTL is a plan's certificate lifetime when it names none.
const DefaultCertificateTTL = time.Hour

var (
	planNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*$`)
	// semverRE is semantic versioning 2.0's grammar.
	semverRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
)

// LoadFileConfig reads and checks a broker configuration file. Unknown
// fields are errors, so that nothing in it is silently ignored.
func LoadFileConfig(path string) (FileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return FileConfig{}, fmt.Errorf("broker config: %w", err)
	}
	var fc FileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil {
		return FileConfig{}, fmt.Errorf("broker config %s: %w", path, err)
	}
	if err := checkPlans(fc.Plans); err != nil {
		return FileConfig{}, fmt.Errorf("broker config %s: %w", path, err)
	}
	return fc, nil
}

// checkPlans validates plans, their names and their schemas.
func checkPlans(plans []PlanConfig) error {
	seen := map[string]bool{}
	for i, p := range plans {
		where := fmt.Sprintf("plans[%d] (%s)", i, p.Name)
		switch {
		case !planNameRE.MatchString(p.Name):
			return fmt.Errorf("%s: name must be a non-empty CLI-friendly string (letters, digits, periods, hyphens)", where)
		case seen[p.Name]:
			return fmt.Errorf("%s: name is used twice", where)
		case p.Description == "":
			return fmt.Errorf("%s: description is required", where)
		case p.CertificateTTL < 0:
			return fmt.Errorf("%s: certificate_ttl must not be negative", where)
		case p.MaximumPollingDuration < 0:
			return fmt.Errorf("%s: maximum_polling_duration must not be negative", where)
		case p.MaintenanceInfo != nil && !semverRE.MatchString(p.MaintenanceInfo.Version):
			return fmt.Errorf("%s: maintenance_info.version %q is not a semantic version 2.0", where, p.MaintenanceInfo.Version)
		}
		seen[p.Name] = true
		if _, err := compilePlanSchemas(p); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	return nil
}
