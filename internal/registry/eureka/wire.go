package eureka

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The Eureka v2 REST API's documents, in both of its encodings: JSON as
// Eureka's Jackson codec writes it ("port": {"$": 9080, "@enabled":
// "true"}, a single application or instance sometimes not wrapped in an
// array) and XML as its XStream codec writes it (<port enabled="true">).
// Decoding is lenient where Eureka servers of different versions differ
// (numbers as strings, booleans as strings); encoding follows Eureka 1.10.

// Statuses of an instance.
const (
	StatusUp           = "UP"
	StatusDown         = "DOWN"
	StatusStarting     = "STARTING"
	StatusOutOfService = "OUT_OF_SERVICE"
	StatusUnknown      = "UNKNOWN"
)

// Action types of a delta.
const (
	ActionAdded    = "ADDED"
	ActionModified = "MODIFIED"
	ActionDeleted  = "DELETED"
)

// Port is an instance's port and whether it is enabled.
type Port struct {
	Number  int
	Enabled bool
}

// DataCenterInfo is where an instance runs: "MyOwn", or "Amazon" with
// metadata such as availability-zone.
type DataCenterInfo struct {
	Class    string
	Name     string
	Metadata map[string]string
}

// LeaseInfo is an instance's lease, timestamps in Unix milliseconds.
type LeaseInfo struct {
	RenewalIntervalInSecs int   `json:"renewalIntervalInSecs" xml:"renewalIntervalInSecs"`
	DurationInSecs        int   `json:"durationInSecs" xml:"durationInSecs"`
	RegistrationTimestamp int64 `json:"registrationTimestamp" xml:"registrationTimestamp"`
	LastRenewalTimestamp  int64 `json:"lastRenewalTimestamp" xml:"lastRenewalTimestamp"`
	EvictionTimestamp     int64 `json:"evictionTimestamp" xml:"evictionTimestamp"`
	ServiceUpTimestamp    int64 `json:"serviceUpTimestamp" xml:"serviceUpTimestamp"`
}

// Instance is one registered instance.
type Instance struct {
	InstanceID       string
	HostName         string
	App              string
	IPAddr           string
	Status           string
	OverriddenStatus string
	Port, SecurePort Port
	CountryID        int
	DataCenterInfo   DataCenterInfo
	LeaseInfo        LeaseInfo
	Metadata         map[string]string
	HomePageURL      string
	StatusPageURL    string
	HealthCheckURL   string
	VIPAddress       string
	SecureVIPAddress string
	Coordinating     bool
	LastUpdated      int64
	LastDirty        int64
	ActionType       string
}

// ID is the instance's identity in its application: instanceId, else the
// Amazon instance-id, else the host name (as Eureka's InstanceInfo.getId).
func (i *Instance) ID() string {
	if i.InstanceID != "" {
		return i.InstanceID
	}
	if i.DataCenterInfo.Name == "Amazon" && i.DataCenterInfo.Metadata["instance-id"] != "" {
		return i.DataCenterInfo.Metadata["instance-id"]
	}
	return i.HostName
}

// Application is an application's instances.
type Application struct {
	Name      string
	Instances []*Instance
}

// Applications is the answer of /apps and /apps/delta.
type Applications struct {
	VersionsDelta string
	AppsHashcode  string
	Applications  []*Application
}

// HashCode is Eureka's reconcile hash of a set of applications: the count
// of instances by status, statuses in alphabetical order, as
// "STATUS_COUNT_" pieces ("DOWN_1_UP_3_").
func HashCode(apps []*Application) string {
	counts := map[string]int{}
	for _, a := range apps {
		for _, i := range a.Instances {
			counts[i.Status]++
		}
	}
	var b strings.Builder
	for _, s := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(&b, "%s_%d_", s, counts[s])
	}
	return b.String()
}

// --- JSON ---

type jsonPort struct {
	Number  flexInt  `json:"$"`
	Enabled flexBool `json:"@enabled"`
}

// flexInt is a number written as a JSON number or a decimal string.
type flexInt int64

func (n *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not a number: %s", b)
	}
	*n = flexInt(v)
	return nil
}

// flexBool is a boolean written as true/false or "true"/"false".
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	switch strings.Trim(string(b), `"`) {
	case "true":
		*f = true
	case "false", "", "null":
		*f = false
	default:
		return fmt.Errorf("not a boolean: %s", b)
	}
	return nil
}

type jsonDataCenter struct {
	Class    string            `json:"@class"`
	Name     string            `json:"name"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

type jsonInstance struct {
	InstanceID           string          `json:"instanceId,omitempty"`
	HostName             string          `json:"hostName"`
	App                  string          `json:"app"`
	IPAddr               string          `json:"ipAddr"`
	Status               string          `json:"status"`
	OverriddenStatus     string          `json:"overriddenStatus,omitempty"`
	LegacyOverridden     string          `json:"overriddenstatus,omitempty"`
	Port                 jsonPort        `json:"port"`
	SecurePort           jsonPort        `json:"securePort"`
	CountryID            flexInt         `json:"countryId"`
	DataCenterInfo       jsonDataCenter  `json:"dataCenterInfo"`
	LeaseInfo            *jsonLease      `json:"leaseInfo,omitempty"`
	Metadata             json.RawMessage `json:"metadata,omitempty"`
	HomePageURL          string          `json:"homePageUrl,omitempty"`
	StatusPageURL        string          `json:"statusPageUrl,omitempty"`
	HealthCheckURL       string          `json:"healthCheckUrl,omitempty"`
	VIPAddress           string          `json:"vipAddress,omitempty"`
	SecureVIPAddress     string          `json:"secureVipAddress,omitempty"`
	Coordinating         flexBool        `json:"isCoordinatingDiscoveryServer"`
	LastUpdatedTimestamp flexInt         `json:"lastUpdatedTimestamp"`
	LastDirtyTimestamp   flexInt         `json:"lastDirtyTimestamp"`
	ActionType           string          `json:"actionType,omitempty"`
}

type jsonLease struct {
	RenewalIntervalInSecs flexInt `json:"renewalIntervalInSecs"`
	DurationInSecs        flexInt `json:"durationInSecs"`
	RegistrationTimestamp flexInt `json:"registrationTimestamp"`
	LastRenewalTimestamp  flexInt `json:"lastRenewalTimestamp"`
	EvictionTimestamp     flexInt `json:"evictionTimestamp"`
	ServiceUpTimestamp    flexInt `json:"serviceUpTimestamp"`
}

// UnmarshalJSON reads an instance as any Eureka server or client writes it.
func (i *Instance) UnmarshalJSON(b []byte) error {
	var j jsonInstance
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	md, err := decodeJSONMetadata(j.Metadata)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	*i = Instance{
		InstanceID: j.InstanceID, HostName: j.HostName, App: j.App, IPAddr: j.IPAddr, Status: j.Status,
		OverriddenStatus: j.OverriddenStatus,
		Port:             Port{int(j.Port.Number), bool(j.Port.Enabled)},
		SecurePort:       Port{int(j.SecurePort.Number), bool(j.SecurePort.Enabled)},
		CountryID:        int(j.CountryID),
		DataCenterInfo:   DataCenterInfo{Class: j.DataCenterInfo.Class, Name: j.DataCenterInfo.Name, Metadata: j.DataCenterInfo.Metadata},
		Metadata:         md,
		HomePageURL:      j.HomePageURL, StatusPageURL: j.StatusPageURL, HealthCheckURL: j.HealthCheckURL,
		VIPAddress: j.VIPAddress, SecureVIPAddress: j.SecureVIPAddress, Coordinating: bool(j.Coordinating),
		LastUpdated: int64(j.LastUpdatedTimestamp), LastDirty: int64(j.LastDirtyTimestamp), ActionType: j.ActionType,
	}
	if i.OverriddenStatus == "" {
		i.OverriddenStatus = j.LegacyOverridden
	}
	if l := j.LeaseInfo; l != nil {
		i.LeaseInfo = LeaseInfo{int(l.RenewalIntervalInSecs), int(l.DurationInSecs), int64(l.RegistrationTimestamp),
			int64(l.LastRenewalTimestamp), int64(l.EvictionTimestamp), int64(l.ServiceUpTimestamp)}
	}
	return nil
}

// decodeJSONMetadata reads {"key": "value", ...}; Jackson's "@class" marker
// is not metadata, and values that are not strings are kept as their JSON.
func decodeJSONMetadata(raw json.RawMessage) (map[string]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if k == "@class" {
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			s = string(v)
		}
		out[k] = s
	}
	return out, nil
}

// MarshalJSON writes an instance as Eureka's Jackson codec does.
func (i *Instance) MarshalJSON() ([]byte, error) {
	var md json.RawMessage
	if len(i.Metadata) == 0 {
		md = json.RawMessage(`{"@class":"java.util.Collections$EmptyMap"}`)
	} else {
		b, err := json.Marshal(i.Metadata)
		if err != nil {
			return nil, err
		}
		md = b
	}
	type out struct {
		InstanceID       string          `json:"instanceId"`
		HostName         string          `json:"hostName"`
		App              string          `json:"app"`
		IPAddr           string          `json:"ipAddr"`
		Status           string          `json:"status"`
		OverriddenStatus string          `json:"overriddenStatus"`
		Port             map[string]any  `json:"port"`
		SecurePort       map[string]any  `json:"securePort"`
		CountryID        int             `json:"countryId"`
		DataCenterInfo   jsonDataCenter  `json:"dataCenterInfo"`
		LeaseInfo        LeaseInfo       `json:"leaseInfo"`
		Metadata         json.RawMessage `json:"metadata"`
		HomePageURL      string          `json:"homePageUrl"`
		StatusPageURL    string          `json:"statusPageUrl"`
		HealthCheckURL   string          `json:"healthCheckUrl"`
		VIPAddress       string          `json:"vipAddress"`
		SecureVIPAddress string          `json:"secureVipAddress"`
		Coordinating     string          `json:"isCoordinatingDiscoveryServer"`
		LastUpdated      string          `json:"lastUpdatedTimestamp"`
		LastDirty        string          `json:"lastDirtyTimestamp"`
		ActionType       string          `json:"actionType,omitempty"`
	}
	port := func(p Port) map[string]any {
		return map[string]any{"$": p.Number, "@enabled": strconv.FormatBool(p.Enabled)}
	}
	return json.Marshal(out{
		InstanceID: i.InstanceID, HostName: i.HostName, App: i.App, IPAddr: i.IPAddr, Status: i.Status,
		OverriddenStatus: orUnknown(i.OverriddenStatus), Port: port(i.Port), SecurePort: port(i.SecurePort),
		CountryID: i.CountryID, DataCenterInfo: jsonDataCenter(i.DataCenterInfo), LeaseInfo: i.LeaseInfo, Metadata: md,
		HomePageURL: i.HomePageURL, StatusPageURL: i.StatusPageURL, HealthCheckURL: i.HealthCheckURL,
		VIPAddress: i.VIPAddress, SecureVIPAddress: i.SecureVIPAddress, Coordinating: strconv.FormatBool(i.Coordinating),
		LastUpdated: strconv.FormatInt(i.LastUpdated, 10), LastDirty: strconv.FormatInt(i.LastDirty, 10), ActionType: i.ActionType,
	})
}

func orUnknown(s string) string {
	if s == "" {
		return StatusUnknown
	}
	return s
}

// oneOrMany decodes a JSON array of T, or a single T not wrapped in one.
func oneOrMany[T any](raw json.RawMessage) ([]*T, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '[' {
		var out []*T
		err := json.Unmarshal(raw, &out)
		return out, err
	}
	var one T
	if err := json.Unmarshal(raw, &one); err != nil {
		return nil, err
	}
	return []*T{&one}, nil
}

// UnmarshalJSON reads {"name": ..., "instance": [...] or {...}}.
func (a *Application) UnmarshalJSON(b []byte) error {
	var j struct {
		Name     string          `json:"name"`
		Instance json.RawMessage `json:"instance"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	ins, err := oneOrMany[Instance](j.Instance)
	if err != nil {
		return fmt.Errorf("application %s: %w", j.Name, err)
	}
	*a = Application{Name: j.Name, Instances: ins}
	return nil
}

// MarshalJSON writes an application with its instances in an array.
func (a *Application) MarshalJSON() ([]byte, error) {
	ins := a.Instances
	if ins == nil {
		ins = []*Instance{}
	}
	return json.Marshal(struct {
		Name     string      `json:"name"`
		Instance []*Instance `json:"instance"`
	}{a.Name, ins})
}

// DecodeApplicationsJSON reads {"applications": {...}}.
func DecodeApplicationsJSON(b []byte) (*Applications, error) {
	var j struct {
		Applications *struct {
			VersionsDelta json.RawMessage `json:"versions__delta"`
			AppsHashcode  string          `json:"apps__hashcode"`
			Application   json.RawMessage `json:"application"`
		} `json:"applications"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, err
	}
	if j.Applications == nil {
		return nil, errors.New(`no "applications" object`)
	}
	apps, err := oneOrMany[Application](j.Applications.Application)
	if err != nil {
		return nil, err
	}
	return &Applications{VersionsDelta: strings.Trim(string(j.Applications.VersionsDelta), `"`), AppsHashcode: j.Applications.AppsHashcode, Applications: apps}, nil
}

// EncodeApplicationsJSON writes {"applications": {...}} as Eureka does.
func EncodeApplicationsJSON(a *Applications) ([]byte, error) {
	apps := a.Applications
	if apps == nil {
		apps = []*Application{}
	}
	return json.Marshal(map[string]any{"applications": map[string]any{
		"versions__delta": a.VersionsDelta, "apps__hashcode": a.AppsHashcode, "application": apps,
	}})
}

// --- XML ---

type xmlPort struct {
	Number  string `xml:",chardata"`
	Enabled string `xml:"enabled,attr"`
}

// xmlMetadata is a map written as child elements: <metadata><k>v</k></metadata>.
type xmlMetadata map[string]string

func (m *xmlMetadata) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	out := map[string]string{}
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var v string
			if err := d.DecodeElement(&v, &t); err != nil {
				return err
			}
			out[t.Name.Local] = v
		case xml.EndElement:
			*m = out
			return nil
		}
	}
}

func (m xmlMetadata) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if len(m) == 0 {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "class"}, Value: "java.util.Collections$EmptyMap"})
	}
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if err := e.EncodeElement(m[k], xml.StartElement{Name: xml.Name{Local: k}}); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

type xmlDataCenter struct {
	Class    string      `xml:"class,attr"`
	Name     string      `xml:"name"`
	Metadata xmlMetadata `xml:"metadata,omitempty"`
}

type xmlInstance struct {
	XMLName          xml.Name      `xml:"instance"`
	InstanceID       string        `xml:"instanceId,omitempty"`
	HostName         string        `xml:"hostName"`
	App              string        `xml:"app"`
	IPAddr           string        `xml:"ipAddr"`
	Status           string        `xml:"status"`
	OverriddenStatus string        `xml:"overriddenstatus"`
	Port             xmlPort       `xml:"port"`
	SecurePort       xmlPort       `xml:"securePort"`
	CountryID        string        `xml:"countryId"`
	DataCenterInfo   xmlDataCenter `xml:"dataCenterInfo"`
	LeaseInfo        *LeaseInfo    `xml:"leaseInfo"`
	Metadata         xmlMetadata   `xml:"metadata"`
	HomePageURL      string        `xml:"homePageUrl,omitempty"`
	StatusPageURL    string        `xml:"statusPageUrl,omitempty"`
	HealthCheckURL   string        `xml:"healthCheckUrl,omitempty"`
	VIPAddress       string        `xml:"vipAddress,omitempty"`
	SecureVIPAddress string        `xml:"secureVipAddress,omitempty"`
	Coordinating     string        `xml:"isCoordinatingDiscoveryServer"`
	LastUpdated      string        `xml:"lastUpdatedTimestamp"`
	LastDirty        string        `xml:"lastDirtyTimestamp"`
	ActionType       string        `xml:"actionType,omitempty"`
}

func atoi(s, what string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: not a number: %q", what, s)
	}
	return n, nil
}

func (x *xmlInstance) instance() (*Instance, error) {
	i := &Instance{InstanceID: x.InstanceID, HostName: x.HostName, App: x.App, IPAddr: x.IPAddr, Status: x.Status,
		OverriddenStatus: x.OverriddenStatus, DataCenterInfo: DataCenterInfo{Class: x.DataCenterInfo.Class, Name: x.DataCenterInfo.Name, Metadata: x.DataCenterInfo.Metadata},
		Metadata: x.Metadata, HomePageURL: x.HomePageURL, StatusPageURL: x.StatusPageURL, HealthCheckURL: x.HealthCheckURL,
		VIPAddress: x.VIPAddress, SecureVIPAddress: x.SecureVIPAddress, Coordinating: x.Coordinating == "true", ActionType: x.ActionType}
	if len(i.Metadata) == 0 {
		i.Metadata = nil
	}
	var err error
	var n int64
	if n, err = atoi(x.Port.Number, "port"); err != nil {
		return nil, err
	}
	i.Port = Port{int(n), x.Port.Enabled == "true"}
	if n, err = atoi(x.SecurePort.Number, "securePort"); err != nil {
		return nil, err
	}
	i.SecurePort = Port{int(n), x.SecurePort.Enabled == "true"}
	if n, err = atoi(x.CountryID, "countryId"); err != nil {
		return nil, err
	}
	i.CountryID = int(n)
	if i.LastUpdated, err = atoi(x.LastUpdated, "lastUpdatedTimestamp"); err != nil {
		return nil, err
	}
	if i.LastDirty, err = atoi(x.LastDirty, "lastDirtyTimestamp"); err != nil {
		return nil, err
	}
	if x.LeaseInfo != nil {
		i.LeaseInfo = *x.LeaseInfo
	}
	return i, nil
}

func xmlOf(i *Instance) *xmlInstance {
	return &xmlInstance{InstanceID: i.InstanceID, HostName: i.HostName, App: i.App, IPAddr: i.IPAddr, Status: i.Status,
		OverriddenStatus: orUnknown(i.OverriddenStatus),
		Port:             xmlPort{strconv.Itoa(i.Port.Number), strconv.FormatBool(i.Port.Enabled)},
		SecurePort:       xmlPort{strconv.Itoa(i.SecurePort.Number), strconv.FormatBool(i.SecurePort.Enabled)},
		CountryID:        strconv.Itoa(i.CountryID),
		DataCenterInfo:   xmlDataCenter{i.DataCenterInfo.Class, i.DataCenterInfo.Name, i.DataCenterInfo.Metadata},
		LeaseInfo:        &i.LeaseInfo, Metadata: i.Metadata, HomePageURL: i.HomePageURL, StatusPageURL: i.StatusPageURL,
		HealthCheckURL: i.HealthCheckURL, VIPAddress: i.VIPAddress, SecureVIPAddress: i.SecureVIPAddress,
		Coordinating: strconv.FormatBool(i.Coordinating), LastUpdated: strconv.FormatInt(i.LastUpdated, 10),
		LastDirty: strconv.FormatInt(i.LastDirty, 10), ActionType: i.ActionType}
}

// DecodeInstanceXML reads <instance>...</instance>.
func DecodeInstanceXML(b []byte) (*Instance, error) {
	var x xmlInstance
	if err := xml.Unmarshal(b, &x); err != nil {
		return nil, err
	}
	return x.instance()
}

// EncodeInstanceXML writes <instance>...</instance>.
func EncodeInstanceXML(i *Instance) ([]byte, error) { return xml.Marshal(xmlOf(i)) }

type xmlApplication struct {
	XMLName   xml.Name       `xml:"application"`
	Name      string         `xml:"name"`
	Instances []*xmlInstance `xml:"instance"`
}

type xmlApplications struct {
	XMLName       xml.Name          `xml:"applications"`
	VersionsDelta string            `xml:"versions__delta"`
	AppsHashcode  string            `xml:"apps__hashcode"`
	Applications  []*xmlApplication `xml:"application"`
}

func (x *xmlApplication) application() (*Application, error) {
	a := &Application{Name: x.Name}
	for _, xi := range x.Instances {
		i, err := xi.instance()
		if err != nil {
			return nil, fmt.Errorf("application %s: %w", x.Name, err)
		}
		a.Instances = append(a.Instances, i)
	}
	return a, nil
}

func xmlApp(a *Application) *xmlApplication {
	x := &xmlApplication{Name: a.Name}
	for _, i := range a.Instances {
		x.Instances = append(x.Instances, xmlOf(i))
	}
	return x
}

// DecodeApplicationsXML reads <applications>...</applications>.
func DecodeApplicationsXML(b []byte) (*Applications, error) {
	var x xmlApplications
	if err := xml.Unmarshal(b, &x); err != nil {
		return nil, err
	}
	out := &Applications{VersionsDelta: x.VersionsDelta, AppsHashcode: x.AppsHashcode}
	for _, xa := range x.Applications {
		a, err := xa.application()
		if err != nil {
			return nil, err
		}
		out.Applications = append(out.Applications, a)
	}
	return out, nil
}

// EncodeApplicationsXML writes <applications>...</applications>.
func EncodeApplicationsXML(a *Applications) ([]byte, error) {
	x := xmlApplications{VersionsDelta: a.VersionsDelta, AppsHashcode: a.AppsHashcode}
	for _, app := range a.Applications {
		x.Applications = append(x.Applications, xmlApp(app))
	}
	return xml.Marshal(x)
}

// DecodeApplicationXML reads <application>...</application>.
func DecodeApplicationXML(b []byte) (*Application, error) {
	var x xmlApplication
	if err := xml.Unmarshal(b, &x); err != nil {
		return nil, err
	}
	return x.application()
}

// EncodeApplicationXML writes <application>...</application>.
func EncodeApplicationXML(a *Application) ([]byte, error) { return xml.Marshal(xmlApp(a)) }
