package broker

import (
	"crypto/sha1"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/mast-mesh/mast/internal/config"
)

// The annotations (or labels: both are read) that export a ServiceEntry
// through the broker. Only broker.mast.dev/export is required.
const (
	// AnnotationExport: "true" puts the service in the catalog.
	AnnotationExport = "broker.mast.dev/export"
	// AnnotationServiceID overrides the derived service offering id.
	AnnotationServiceID = "broker.mast.dev/service-id"
	// AnnotationName overrides the offering's name (default NAME.NAMESPACE).
	AnnotationName = "broker.mast.dev/name"
	// AnnotationDescription is the offering's description.
	AnnotationDescription = "broker.mast.dev/description"
	// AnnotationPlans is a comma-separated list of the plan names offered
	// (default: every plan of the configuration).
	AnnotationPlans = "broker.mast.dev/plans"
)

// offering is one service of the catalog: its JSON form and what the
// broker needs to act on it.
type offering struct {
	JSON  serviceJSON
	Ref   ServiceRef
	plans map[string]*plan // by plan id
}

// ServiceRef is the exported ServiceEntry an instance gives access to.
type ServiceRef struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Host      string            `json:"host"`
	Selector  map[string]string `json:"selector"`
}

type plan struct {
	id      string
	cfg     PlanConfig
	schemas *planSchemas
}

func (p *plan) certTTL() Duration {
	if p.cfg.CertificateTTL == 0 {
		return Duration(DefaultCertificateTTL)
	}
	return p.cfg.CertificateTTL
}

func (p *plan) maintenanceVersion() string {
	if p.cfg.MaintenanceInfo == nil {
		return ""
	}
	return p.cfg.MaintenanceInfo.Version
}

func (p *plan) updateable(o *offering) bool {
	if p.cfg.PlanUpdateable {
		return true
	}
	return o.JSON.PlanUpdateable
}

type serviceJSON struct {
	Name                 string         `json:"name"`
	ID                   string         `json:"id"`
	Description          string         `json:"description"`
	Tags                 []string       `json:"tags"`
	Requires             []string       `json:"requires"`
	Bindable             bool           `json:"bindable"`
	InstancesRetrievable bool           `json:"instances_retrievable"`
	BindingsRetrievable  bool           `json:"bindings_retrievable"`
	AllowContextUpdates  bool           `json:"allow_context_updates"`
	PlanUpdateable       bool           `json:"plan_updateable"`
	Metadata             map[string]any `json:"metadata"`
	Plans                []planJSON     `json:"plans"`
}

type planJSON struct {
	ID                     string           `json:"id"`
	Name                   string           `json:"name"`
	Description            string           `json:"description"`
	Metadata               map[string]any   `json:"metadata,omitempty"`
	Free                   bool             `json:"free"`
	Bindable               bool             `json:"bindable"`
	BindingRotatable       bool             `json:"binding_rotatable"`
	PlanUpdateable         bool             `json:"plan_updateable"`
	Schemas                schemasJSON      `json:"schemas"`
	MaximumPollingDuration int              `json:"maximum_polling_duration,omitempty"`
	MaintenanceInfo        *MaintenanceInfo `json:"maintenance_info,omitempty"`
}

type inputSchemaJSON struct {
	Parameters map[string]any `json:"parameters"`
}

type schemasJSON struct {
	ServiceInstance struct {
		Create inputSchemaJSON `json:"create"`
		Update inputSchemaJSON `json:"update"`
	} `json:"service_instance"`
	ServiceBinding struct {
		Create inputSchemaJSON `json:"create"`
	} `json:"service_binding"`
}

// catalog is the broker's catalog for one configuration snapshot.
type catalog struct {
	services []*offering          // by name
	byID     map[string]*offering // by service id
}

type catalogJSON struct {
	Services []serviceJSON `json:"services"`
}

func (c *catalog) json() catalogJSON {
	out := catalogJSON{Services: []serviceJSON{}}
	for _, o := range c.services {
		out.Services = append(out.Services, o.JSON)
	}
	return out
}

// lookup resolves a service and plan id from a request.
func (c *catalog) lookup(serviceID, planID string) (*offering, *plan, *apiError) {
	o, ok := c.byID[serviceID]
	if !ok {
		return nil, nil, badRequest("service_id %q is not in the catalog", serviceID)
	}
	p, ok := o.plans[planID]
	if !ok {
		return o, nil, badRequest("plan_id %q is not a plan of service %q (%s)", planID, o.JSON.Name, serviceID)
	}
	return o, p, nil
}

// exported reports whether a resource is marked for export.
func exported(r config.Resource) bool {
	return strings.EqualFold(metaValue(r, AnnotationExport), "true")
}

func metaValue(r config.Resource, key string) string {
	if v, ok := r.Annotations[key]; ok {
		return v
	}
	return r.Labels[key]
}

// buildCatalog derives the catalog from the ServiceEntries marked for
// export. One that cannot be exported (no workloadSelector to attach an
// AuthorizationPolicy to, an unknown plan, a duplicate id or name) is left
// out with a warning naming it.
func buildCatalog(snap *config.Snapshot, plans []*plan, log *slog.Logger) *catalog {
	c := &catalog{byID: map[string]*offering{}}
	names := map[string]bool{}
	for _, r := range snap.List(config.ServiceEntry) {
		if !exported(r) {
			continue
		}
		o, err := newOffering(r, plans)
		if err == nil && c.byID[o.JSON.ID] != nil {
			err = fmt.Errorf("service id %q is used by another exported service", o.JSON.ID)
		}
		if err == nil && names[o.JSON.Name] {
			err = fmt.Errorf("service name %q is used by another exported service", o.JSON.Name)
		}
		if err != nil {
			log.Warn("service not exported through the broker", "resource", r.Key().String(), "source", r.Source.String(), "err", err)
			continue
		}
		c.byID[o.JSON.ID] = o
		names[o.JSON.Name] = true
		c.services = append(c.services, o)
	}
	slices.SortFunc(c.services, func(a, b *offering) int { return strings.Compare(a.JSON.Name, b.JSON.Name) })
	return c
}

func newOffering(r config.Resource, plans []*plan) (*offering, error) {
	se := r.Spec.(*networking.ServiceEntry)
	if len(se.GetWorkloadSelector().GetLabels()) == 0 {
		return nil, fmt.Errorf("it has no workloadSelector, so no AuthorizationPolicy can guard its workloads")
	}
	if len(se.GetHosts()) == 0 || len(se.GetPorts()) == 0 {
		return nil, fmt.Errorf("it has no host or no port")
	}
	id := metaValue(r, AnnotationServiceID)
	if id == "" {
		id = nameUUID("service/" + r.Namespace + "/" + r.Name)
	}
	name := metaValue(r, AnnotationName)
	if name == "" {
		name = r.Name + "." + r.Namespace
	}
	if !planNameRE.MatchString(name) {
		return nil, fmt.Errorf("offering name %q is not CLI-friendly (letters, digits, periods, hyphens)", name)
	}
	desc := metaValue(r, AnnotationDescription)
	if desc == "" {
		desc = "Mesh service " + se.GetHosts()[0] + ", reached through the mesh with mTLS"
	}
	o := &offering{
		Ref:   ServiceRef{Namespace: r.Namespace, Name: r.Name, Host: se.GetHosts()[0], Selector: se.GetWorkloadSelector().GetLabels()},
		plans: map[string]*plan{},
		JSON: serviceJSON{
			Name: name, ID: id, Description: desc,
			Tags:     []string{"mesh", "mtls"},
			Requires: []string{},
			Bindable: true, InstancesRetrievable: true, BindingsRetrievable: true, AllowContextUpdates: true,
			Metadata: map[string]any{"displayName": name, "mast.dev/host": se.GetHosts()[0], "mast.dev/serviceEntry": r.Namespace + "/" + r.Name},
		},
	}
	want := map[string]bool{}
	if v := metaValue(r, AnnotationPlans); v != "" {
		for _, n := range strings.Split(v, ",") {
			want[strings.TrimSpace(n)] = true
		}
	}
	missing := maps.Clone(want)
	for _, p := range plans {
		if len(want) > 0 && !want[p.cfg.Name] {
			continue
		}
		delete(missing, p.cfg.Name)
		pid := nameUUID("plan/" + id + "/" + p.cfg.Name)
		sp := &plan{id: pid, cfg: p.cfg, schemas: p.schemas}
		o.plans[pid] = sp
		o.JSON.Plans = append(o.JSON.Plans, planToJSON(sp))
	}
	for n := range missing {
		return nil, fmt.Errorf("%s names plan %q, which the broker configuration does not define", AnnotationPlans, n)
	}
	if len(o.JSON.Plans) == 0 {
		return nil, fmt.Errorf("it has no plans")
	}
	return o, nil
}

func planToJSON(p *plan) planJSON {
	j := planJSON{
		ID: p.id, Name: p.cfg.Name, Description: p.cfg.Description, Metadata: p.cfg.Metadata,
		Free: p.cfg.Free == nil || *p.cfg.Free, Bindable: p.cfg.Bindable == nil || *p.cfg.Bindable,
		BindingRotatable: p.cfg.BindingRotatable, PlanUpdateable: p.cfg.PlanUpdateable,
		MaximumPollingDuration: p.cfg.MaximumPollingDuration, MaintenanceInfo: p.cfg.MaintenanceInfo,
	}
	j.Schemas.ServiceInstance.Create.Parameters = p.schemas.instanceCreate
	j.Schemas.ServiceInstance.Update.Parameters = p.schemas.instanceUpdate
	j.Schemas.ServiceBinding.Create.Parameters = p.schemas.bindingCreate
	return j
}

// nameUUID derives a stable name-based UUID (version 5 layout, SHA-1) from s.
func nameUUID(s string) string {
	h := sha1.Sum([]byte("mast-broker/" + s))
	h[6] = (h[6] & 0x0f) | 0x50
	h[8] = (h[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
