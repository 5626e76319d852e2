package broker

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
)

// emptyObject is the specification's `{}` body.
var emptyObject = struct{}{}

type asyncBody struct {
	Operation string `json:"operation,omitempty"`
}

type instanceBody struct {
	ServiceID       string           `json:"service_id"`
	PlanID          string           `json:"plan_id"`
	Parameters      json.RawMessage  `json:"parameters,omitempty"`
	MaintenanceInfo *MaintenanceInfo `json:"maintenance_info,omitempty"`
	Metadata        *instanceMeta    `json:"metadata,omitempty"`
}

type instanceMeta struct {
	Labels     map[string]string `json:"labels,omitempty"`
	Attributes map[string]string `json:"attributes,omitempty"`
}

type lastOperationBody struct {
	State            string `json:"state"`
	Description      string `json:"description,omitempty"`
	InstanceUsable   *bool  `json:"instance_usable,omitempty"`
	UpdateRepeatable *bool  `json:"update_repeatable,omitempty"`
}

// result is a handler's answer: a status and a body, or an error.
type result struct {
	status int
	body   any
	err    *apiError
}

func ok(status int, body any) result { return result{status: status, body: body} }
func fail(err *apiError) result      { return result{err: err} }

var dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// defaultIdentityNamespace is the namespace of bindings' identities when
// neither the parameters nor the platform's context name one.
const defaultIdentityNamespace = "osb"

// identityNamespace is parameters.namespace, else a Kubernetes platform's
// context.namespace, else "osb".
func identityNamespace(params, ctx json.RawMessage) string {
	var p struct {
		Namespace string `json:"namespace"`
	}
	if params != nil && json.Unmarshal(params, &p) == nil && dnsLabelRE.MatchString(p.Namespace) && len(p.Namespace) <= 63 {
		return p.Namespace
	}
	var c struct {
		Namespace string `json:"namespace"`
	}
	if ctx != nil && json.Unmarshal(ctx, &c) == nil && dnsLabelRE.MatchString(c.Namespace) && len(c.Namespace) <= 63 {
		return c.Namespace
	}
	return defaultIdentityNamespace
}

func concurrencyError(what string) *apiError {
	return errorf(http.StatusUnprocessableEntity, CodeConcurrencyError, "another operation for this %s is in progress", what)
}

func asyncRequired() *apiError {
	return errorf(http.StatusUnprocessableEntity, CodeAsyncRequired, "This Service Plan requires client support for asynchronous service operations.")
}

func maintenanceConflict(want string) *apiError {
	if want == "" {
		return errorf(http.StatusUnprocessableEntity, CodeMaintenanceInfoConflict, "The Service Plan has no maintenance information; omit maintenance_info.")
	}
	return errorf(http.StatusUnprocessableEntity, CodeMaintenanceInfoConflict, "The maintenance information for the requested Service Plan has changed: its version is %s.", want)
}

// provision handles PUT /v2/service_instances/:instance_id.
func (b *Broker) provision(r *http.Request, iid string, body []byte) result {
	async, aerr := acceptsIncomplete(r)
	if aerr != nil {
		return fail(aerr)
	}
	req, aerr := decodeProvision(body)
	if aerr != nil {
		return fail(aerr)
	}
	o, p, aerr := b.catalog().lookup(req.ServiceID, req.PlanID)
	if aerr != nil {
		return fail(aerr)
	}
	if req.MaintenanceInfo != nil && req.MaintenanceInfo.Version != p.maintenanceVersion() {
		return fail(maintenanceConflict(p.maintenanceVersion()))
	}
	if aerr := validateParams("service_instance.create", p.schemas.instanceCreateC, req.Parameters); aerr != nil {
		return fail(aerr)
	}
	b.mu.Lock()
	if inst := b.st.Instances[iid]; inst != nil {
		same := inst.ServiceID == req.ServiceID && inst.PlanID == req.PlanID && bytes.Equal(inst.Parameters, req.Parameters) &&
			inst.OrganizationGUID == req.OrganizationGUID && inst.SpaceGUID == req.SpaceGUID
		inProgress := inst.Op != nil && inst.Op.State == stateInProgress
		switch {
		case !same:
			b.mu.Unlock()
			return fail(errorf(http.StatusConflict, codeConflict, "instance %q already exists with different attributes", iid))
		case inProgress && inst.Op.Kind == opProvision && async:
			op := inst.Op.ID
			b.mu.Unlock()
			return ok(http.StatusAccepted, asyncBody{Operation: op})
		case inProgress:
			b.mu.Unlock()
			return fail(concurrencyError("Service Instance"))
		case inst.Provisioned:
			b.mu.Unlock()
			return ok(http.StatusOK, emptyObject)
		}
		// A failed provisioning: try again.
	}
	if p.cfg.AsyncRequired && !async {
		b.mu.Unlock()
		return fail(asyncRequired())
	}
	op := &Operation{ID: newOperationID(opProvision), Kind: opProvision, State: stateInProgress, Async: async, Started: b.now()}
	inst := &Instance{
		ID: iid, ServiceID: req.ServiceID, PlanID: req.PlanID,
		OrganizationGUID: req.OrganizationGUID, SpaceGUID: req.SpaceGUID,
		Context: req.Context, Parameters: req.Parameters, MaintenanceVersion: p.maintenanceVersion(),
		Namespace: identityNamespace(req.Parameters, req.Context), Service: o.Ref, Op: op,
	}
	b.st.Instances[iid] = inst
	delete(b.st.Gone, "i/"+iid)
	if err := b.saveLocked(); err != nil {
		delete(b.st.Instances, iid)
		b.mu.Unlock()
		return fail(errorf(http.StatusInternalServerError, codeInternal, "persisting the instance: %v", err))
	}
	b.log.Info("provisioning", "instance", iid, "service", o.JSON.Name, "plan", p.cfg.Name, "operation", op.ID, "async", async)
	if async {
		b.goInstanceOp(iid, op.ID)
		b.mu.Unlock()
		return ok(http.StatusAccepted, asyncBody{Operation: op.ID})
	}
	b.mu.Unlock()
	return b.syncInstanceResult(iid, op.ID, http.StatusCreated)
}

// syncInstanceResult runs an instance operation in the request and answers
// with its outcome.
func (b *Broker) syncInstanceResult(iid, opID string, success int) result {
	b.runInstanceOp(iid, opID)
	b.mu.Lock()
	defer b.mu.Unlock()
	inst := b.st.Instances[iid]
	switch {
	case inst == nil || inst.Op == nil || inst.Op.ID != opID:
		if _, gone := b.st.Gone["i/"+iid]; gone {
			return ok(success, emptyObject)
		}
		return fail(errorf(http.StatusInternalServerError, codeInternal, "the operation failed"))
	case inst.Op.State == stateSucceeded:
		return ok(success, emptyObject)
	case inst.Op.State == stateInProgress:
		return fail(errorf(http.StatusServiceUnavailable, codeInternal, "the broker is stopping; the operation resumes when it starts again"))
	}
	e := errorf(http.StatusInternalServerError, codeInternal, "%s", inst.Op.Description)
	if inst.Op.Kind == opUpdate || inst.Op.Kind == opDeprovision {
		e.instanceUsable, e.updateRepeatable = inst.Op.InstanceUsable, inst.Op.UpdateRepeatable
	}
	if inst.Op.Kind == opProvision {
		// A failed synchronous provisioning leaves nothing behind.
		delete(b.st.Instances, iid)
		b.saveLocked()
	}
	return fail(e)
}

// getInstance handles GET /v2/service_instances/:instance_id.
func (b *Broker) getInstance(r *http.Request, iid string) result {
	if _, _, aerr := hintQuery(r, "service_id", "plan_id"); aerr != nil {
		return fail(aerr)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	inst := b.st.Instances[iid]
	if inst == nil || !inst.Provisioned {
		return fail(errorf(http.StatusNotFound, codeNotFound, "instance %q does not exist or is still being provisioned", iid))
	}
	if inst.Op != nil && inst.Op.Kind == opUpdate && inst.Op.State == stateInProgress {
		return fail(concurrencyError("Service Instance (it is being updated)"))
	}
	out := instanceBody{ServiceID: inst.ServiceID, PlanID: inst.PlanID, Parameters: inst.Parameters,
		Metadata: &instanceMeta{Attributes: map[string]string{
			"mast.dev/authorization-policy": inst.Service.Namespace + "/" + policyName(iid),
			"mast.dev/identity-namespace":   inst.Namespace,
		}}}
	if out.Parameters == nil {
		out.Parameters = json.RawMessage("{}")
	}
	if inst.MaintenanceVersion != "" {
		out.MaintenanceInfo = &MaintenanceInfo{Version: inst.MaintenanceVersion}
	}
	return ok(http.StatusOK, out)
}

// update handles PATCH /v2/service_instances/:instance_id.
func (b *Broker) update(r *http.Request, iid string, body []byte) result {
	async, aerr := acceptsIncomplete(r)
	if aerr != nil {
		return fail(aerr)
	}
	req, aerr := decodeUpdate(body)
	if aerr != nil {
		return fail(aerr)
	}
	cat := b.catalog()
	b.mu.Lock()
	inst := b.st.Instances[iid]
	res, op := b.planUpdateLocked(cat, inst, iid, req, async)
	if op == nil {
		b.mu.Unlock()
		return res
	}
	inst.Op = op
	if err := b.saveLocked(); err != nil {
		b.mu.Unlock()
		return fail(errorf(http.StatusInternalServerError, codeInternal, "persisting the update: %v", err))
	}
	b.log.Info("updating", "instance", iid, "plan", op.Update.PlanID, "operation", op.ID, "async", async)
	if async {
		b.goInstanceOp(iid, op.ID)
		b.mu.Unlock()
		return ok(http.StatusAccepted, asyncBody{Operation: op.ID})
	}
	b.mu.Unlock()
	return b.syncInstanceResult(iid, op.ID, http.StatusOK)
}

// planUpdateLocked checks an update request; it returns the operation to
// run, or (op nil) the answer.
func (b *Broker) planUpdateLocked(cat *catalog, inst *Instance, iid string, req *updateRequest, async bool) (result, *Operation) {
	if inst == nil {
		return fail(errorf(http.StatusNotFound, codeNotFound, "instance %q does not exist", iid)), nil
	}
	if !inst.Provisioned {
		if inst.Op != nil && inst.Op.State == stateInProgress {
			return fail(concurrencyError("Service Instance (it is being provisioned)")), nil
		}
		return fail(errorf(http.StatusNotFound, codeNotFound, "instance %q failed to provision", iid)), nil
	}
	if req.ServiceID != inst.ServiceID {
		return fail(badRequest("service_id %q is not the instance's service (%s)", req.ServiceID, inst.ServiceID)), nil
	}
	o := cat.byID[inst.ServiceID]
	if o == nil {
		return fail(errorf(http.StatusUnprocessableEntity, codeNotSupported, "service %s is no longer offered; the instance can only be deprovisioned", inst.ServiceID)), nil
	}
	target := inst.PlanID
	if req.PlanID != nil {
		target = *req.PlanID
	}
	p, found := o.plans[target]
	if !found {
		return fail(badRequest("plan_id %q is not a plan of service %q", target, o.JSON.Name)), nil
	}
	if target != inst.PlanID {
		cur, found := o.plans[inst.PlanID]
		if !found || !cur.updateable(o) {
			e := errorf(http.StatusUnprocessableEntity, codeNotSupported, "the instance's plan cannot be changed (plan_updateable is false)")
			e.instanceUsable, e.updateRepeatable = boolp(true), boolp(false)
			return fail(e), nil
		}
	}
	if req.MaintenanceInfo != nil && req.MaintenanceInfo.Version != p.maintenanceVersion() {
		return fail(maintenanceConflict(p.maintenanceVersion())), nil
	}
	if req.Parameters != nil {
		if aerr := validateParams("service_instance.update", p.schemas.instanceUpdateC, req.Parameters); aerr != nil {
			return fail(aerr), nil
		}
	}
	pending := &pendingUpdate{PlanID: target, Parameters: inst.Parameters, Context: inst.Context, MaintenanceVersion: inst.MaintenanceVersion}
	if req.Parameters != nil {
		pending.Parameters = mergeParams(inst.Parameters, req.Parameters)
	}
	if req.Context != nil {
		pending.Context = req.Context
	}
	if target != inst.PlanID || req.MaintenanceInfo != nil {
		pending.MaintenanceVersion = p.maintenanceVersion()
	}
	if inst.Op != nil && inst.Op.State == stateInProgress {
		if inst.Op.Kind == opUpdate && async && samePending(inst.Op.Update, pending) {
			return ok(http.StatusAccepted, asyncBody{Operation: inst.Op.ID}), nil
		}
		return fail(concurrencyError("Service Instance")), nil
	}
	if pending.PlanID == inst.PlanID && bytes.Equal(pending.Parameters, inst.Parameters) && pending.MaintenanceVersion == inst.MaintenanceVersion {
		// Nothing changes in the mesh: record a context update and answer at once.
		if !bytes.Equal(pending.Context, inst.Context) {
			inst.Context = pending.Context
			b.saveLocked()
		}
		return ok(http.StatusOK, emptyObject), nil
	}
	if cur := o.plans[inst.PlanID]; (p.cfg.AsyncRequired || cur != nil && cur.cfg.AsyncRequired) && !async {
		return fail(asyncRequired()), nil
	}
	return result{}, &Operation{ID: newOperationID(opUpdate), Kind: opUpdate, State: stateInProgress, Async: async, Started: b.now(), Update: pending}
}

func samePending(a, b *pendingUpdate) bool {
	return a != nil && b != nil && a.PlanID == b.PlanID && bytes.Equal(a.Parameters, b.Parameters) && a.MaintenanceVersion == b.MaintenanceVersion
}

// mergeParams applies update parameters over the instance's: the keys given
// replace the old ones (the specification leaves the interpretation to the
// broker; absent keys keep their values).
func mergeParams(old, upd json.RawMessage) json.RawMessage {
	m := map[string]json.RawMessage{}
	if old != nil {
		json.Unmarshal(old, &m)
	}
	var u map[string]json.RawMessage
	json.Unmarshal(upd, &u)
	for k, v := range u {
		m[k] = v
	}
	out, _ := json.Marshal(m)
	canon, _ := canonicalObject("parameters", out)
	return canon
}

// deprovision handles DELETE /v2/service_instances/:instance_id.
func (b *Broker) deprovision(r *http.Request, iid string) result {
	async, aerr := acceptsIncomplete(r)
	if aerr != nil {
		return fail(aerr)
	}
	serviceID, planID, aerr := requiredIDs(r)
	if aerr != nil {
		return fail(aerr)
	}
	cat := b.catalog()
	b.mu.Lock()
	inst := b.st.Instances[iid]
	if inst == nil {
		b.mu.Unlock()
		return fail(errorf(http.StatusGone, codeGone, "instance %q does not exist", iid))
	}
	pendingPlan := ""
	if inst.Op != nil && inst.Op.Update != nil && inst.Op.State == stateInProgress {
		pendingPlan = inst.Op.Update.PlanID
	}
	switch {
	case serviceID != inst.ServiceID:
		b.mu.Unlock()
		return fail(badRequest("service_id %q is not the instance's service (%s)", serviceID, inst.ServiceID))
	case planID != inst.PlanID && planID != pendingPlan:
		b.mu.Unlock()
		return fail(badRequest("plan_id %q is not the instance's plan (%s)", planID, inst.PlanID))
	}
	if inst.Op != nil && inst.Op.State == stateInProgress {
		if inst.Op.Kind == opDeprovision && async {
			op := inst.Op.ID
			b.mu.Unlock()
			return ok(http.StatusAccepted, asyncBody{Operation: op})
		}
		b.mu.Unlock()
		return fail(concurrencyError("Service Instance"))
	}
	for _, bd := range b.st.Bindings {
		if bd.InstanceID == iid && bd.Op != nil && bd.Op.State == stateInProgress {
			b.mu.Unlock()
			return fail(concurrencyError("Service Instance (one of its bindings is changing)"))
		}
	}
	if o := cat.byID[inst.ServiceID]; o != nil {
		if p := o.plans[inst.PlanID]; p != nil && p.cfg.AsyncRequired && !async {
			b.mu.Unlock()
			return fail(asyncRequired())
		}
	}
	op := &Operation{ID: newOperationID(opDeprovision), Kind: opDeprovision, State: stateInProgress, Async: async, Started: b.now()}
	inst.Op = op
	if err := b.saveLocked(); err != nil {
		b.mu.Unlock()
		return fail(errorf(http.StatusInternalServerError, codeInternal, "persisting the deprovisioning: %v", err))
	}
	b.log.Info("deprovisioning", "instance", iid, "operation", op.ID, "async", async)
	if async {
		b.goInstanceOp(iid, op.ID)
		b.mu.Unlock()
		return ok(http.StatusAccepted, asyncBody{Operation: op.ID})
	}
	b.mu.Unlock()
	return b.syncInstanceResult(iid, op.ID, http.StatusOK)
}

// instanceLastOperation handles GET /v2/service_instances/:instance_id/last_operation.
func (b *Broker) instanceLastOperation(r *http.Request, iid string) result {
	if _, _, aerr := hintQuery(r, "service_id", "plan_id"); aerr != nil {
		return fail(aerr)
	}
	opID, hasOp, aerr := optionalQuery(r, "operation")
	if aerr != nil {
		return fail(aerr)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	inst := b.st.Instances[iid]
	if inst == nil {
		if _, gone := b.st.Gone["i/"+iid]; gone {
			return fail(errorf(http.StatusGone, codeGone, "instance %q has been deprovisioned", iid))
		}
		return fail(errorf(http.StatusNotFound, codeNotFound, "instance %q does not exist", iid))
	}
	if inst.Op == nil {
		return fail(errorf(http.StatusNotFound, codeNotFound, "instance %q has no operation", iid))
	}
	if hasOp && opID != inst.Op.ID {
		return fail(badRequest("operation %q is not the last operation of instance %q", opID, iid))
	}
	return ok(http.StatusOK, lastOperation(inst.Op))
}

func lastOperation(op *Operation) lastOperationBody {
	out := lastOperationBody{State: op.State, Description: op.Description}
	if op.State == stateFailed && (op.Kind == opUpdate || op.Kind == opDeprovision) {
		out.InstanceUsable = op.InstanceUsable
		if op.Kind == opUpdate {
			out.UpdateRepeatable = op.UpdateRepeatable
		}
	}
	if out.Description == "" {
		out.Description = op.Kind + " " + op.State
	}
	return out
}
