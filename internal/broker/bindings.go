package broker

import (
	"bytes"
	"encoding/json"
	"net/http"
)

type bindingMetadata struct {
	ExpiresAt   string `json:"expires_at,omitempty"`
	RenewBefore string `json:"renew_before,omitempty"`
}

type bindingBody struct {
	Metadata    *bindingMetadata `json:"metadata,omitempty"`
	Credentials *credentials     `json:"credentials,omitempty"`
	Endpoints   []endpointObj    `json:"endpoints,omitempty"`
	Parameters  json.RawMessage  `json:"parameters,omitempty"`
}

func bindingResponse(bd *Binding, withParams bool) bindingBody {
	out := bindingBody{Credentials: bd.Credentials, Endpoints: bd.Endpoints}
	if !bd.ExpiresAt.IsZero() {
		out.Metadata = &bindingMetadata{ExpiresAt: bd.ExpiresAt.Format(timeFormat), RenewBefore: bd.RenewBefore.Format(timeFormat)}
	}
	if withParams {
		out.Parameters = bd.Parameters
		if out.Parameters == nil {
			out.Parameters = json.RawMessage("{}")
		}
	}
	return out
}

// wantsClientCertificate reads the binding parameter client_certificate
// (default true).
func wantsClientCertificate(params json.RawMessage) bool {
	var p struct {
		ClientCertificate *bool `json:"client_certificate"`
	}
	if params != nil && json.Unmarshal(params, &p) == nil && p.ClientCertificate != nil {
		return *p.ClientCertificate
	}
	return true
}

// bind handles PUT /v2/service_instances/:instance_id/service_bindings/:binding_id.
func (b *Broker) bind(r *http.Request, iid, bid string, body []byte) result {
	async, aerr := acceptsIncomplete(r)
	if aerr != nil {
		return fail(aerr)
	}
	req, aerr := decodeBind(body)
	if aerr != nil {
		return fail(aerr)
	}
	cat := b.catalog()
	b.mu.Lock()
	res, bd := b.planBindLocked(cat, iid, bid, req, async)
	if bd == nil {
		b.mu.Unlock()
		return res
	}
	key := bindingKey(iid, bid)
	b.st.Bindings[key] = bd
	delete(b.st.Gone, "b/"+key)
	if err := b.saveLocked(); err != nil {
		delete(b.st.Bindings, key)
		b.mu.Unlock()
		return fail(errorf(http.StatusInternalServerError, codeInternal, "persisting the binding: %v", err))
	}
	opID := bd.Op.ID
	b.log.Info("binding", "instance", iid, "binding", bid, "principal", bd.Principal, "operation", opID, "async", async)
	if async {
		b.goBindingOp(iid, bid, opID)
		b.mu.Unlock()
		return ok(http.StatusAccepted, asyncBody{Operation: opID})
	}
	b.mu.Unlock()
	return b.syncBindingResult(iid, bid, opID, http.StatusCreated)
}

// planBindLocked checks a bind request; it returns the binding to create,
// or (nil) the answer.
func (b *Broker) planBindLocked(cat *catalog, iid, bid string, req *bindRequest, async bool) (result, *Binding) {
	inst := b.st.Instances[iid]
	switch {
	case inst == nil:
		return fail(errorf(http.StatusNotFound, codeNotFound, "instance %q does not exist", iid)), nil
	case !inst.Provisioned && inst.Op != nil && inst.Op.State == stateInProgress:
		return fail(concurrencyError("Service Instance (it is being provisioned)")), nil
	case !inst.Provisioned:
		return fail(errorf(http.StatusNotFound, codeNotFound, "instance %q failed to provision", iid)), nil
	}
	params := req.Parameters
	if req.PredecessorBindingID != nil {
		pred := b.st.Bindings[bindingKey(iid, *req.PredecessorBindingID)]
		if pred == nil || !pred.Created || (!pred.ExpiresAt.IsZero() && !b.now().Before(pred.ExpiresAt)) {
			return fail(badRequest("predecessor_binding_id %q is not a live, unexpired binding of instance %q", *req.PredecessorBindingID, iid)), nil
		}
		if req.ServiceID == "" {
			req.ServiceID = pred.ServiceID
		}
		if req.PlanID == "" {
			req.PlanID = pred.PlanID
		}
		if params == nil {
			params = pred.Parameters
		}
	}
	if req.ServiceID != inst.ServiceID {
		return fail(badRequest("service_id %q is not the instance's service (%s)", req.ServiceID, inst.ServiceID)), nil
	}
	if req.PlanID != inst.PlanID {
		return fail(badRequest("plan_id %q is not the instance's plan (%s)", req.PlanID, inst.PlanID)), nil
	}
	o := cat.byID[inst.ServiceID]
	var p *plan
	if o != nil {
		p = o.plans[inst.PlanID]
	}
	if p == nil {
		return fail(errorf(http.StatusUnprocessableEntity, codeNotSupported, "service %s plan %s is no longer offered; no new bindings", inst.ServiceID, inst.PlanID)), nil
	}
	if p.cfg.Bindable != nil && !*p.cfg.Bindable {
		return fail(badRequest("plan %q is not bindable", p.cfg.Name)), nil
	}
	if req.PredecessorBindingID != nil && !p.cfg.BindingRotatable {
		return fail(badRequest("plan %q does not support binding rotation (binding_rotatable is false)", p.cfg.Name)), nil
	}
	if aerr := validateParams("service_binding.create", p.schemas.bindingCreateC, params); aerr != nil {
		return fail(aerr), nil
	}
	appGUID := ""
	if req.AppGUID != nil {
		appGUID = *req.AppGUID
	}
	pred := ""
	if req.PredecessorBindingID != nil {
		pred = *req.PredecessorBindingID
	}
	if bd := b.st.Bindings[bindingKey(iid, bid)]; bd != nil {
		same := bd.ServiceID == req.ServiceID && bd.PlanID == req.PlanID && bytes.Equal(bd.Parameters, params) &&
			bytes.Equal(bd.BindResource, req.BindResource) && bd.AppGUID == appGUID && bd.PredecessorID == pred
		inProgress := bd.Op != nil && bd.Op.State == stateInProgress
		switch {
		case !same:
			return fail(errorf(http.StatusConflict, codeConflict, "binding %q already exists with different parameters", bid)), nil
		case inProgress && bd.Op.Kind == opBind && async:
			return ok(http.StatusAccepted, asyncBody{Operation: bd.Op.ID}), nil
		case inProgress:
			return fail(concurrencyError("Service Binding")), nil
		case bd.Created:
			return ok(http.StatusOK, bindingResponse(bd, false)), nil
		}
		// A failed binding: try again.
	}
	if inst.Op != nil && inst.Op.State == stateInProgress {
		return fail(concurrencyError("Service Instance")), nil
	}
	if p.cfg.AsyncRequired && !async {
		return fail(asyncRequired()), nil
	}
	if wantsClientCertificate(params) && b.cfg.Issuer == nil {
		return fail(errorf(http.StatusUnprocessableEntity, "CertificatesUnavailable", "mastd runs without its CA, so it cannot issue client certificates; bind with parameters {\"client_certificate\": false}")), nil
	}
	return result{}, &Binding{
		ID: bid, InstanceID: iid, ServiceID: req.ServiceID, PlanID: req.PlanID, AppGUID: appGUID,
		Context: req.Context, BindResource: req.BindResource, Parameters: params, PredecessorID: pred,
		Principal: "spiffe://" + b.cfg.TrustDomain + "/ns/" + inst.Namespace + "/sa/" + serviceAccount(iid, bid),
		Op:        &Operation{ID: newOperationID(opBind), Kind: opBind, State: stateInProgress, Async: async, Started: b.now()},
	}
}

func (b *Broker) syncBindingResult(iid, bid, opID string, success int) result {
	b.runBindingOp(iid, bid, opID)
	key := bindingKey(iid, bid)
	b.mu.Lock()
	defer b.mu.Unlock()
	bd := b.st.Bindings[key]
	switch {
	case bd == nil || bd.Op == nil || bd.Op.ID != opID:
		if _, gone := b.st.Gone["b/"+key]; gone && success == http.StatusOK {
			return ok(success, emptyObject)
		}
		return fail(errorf(http.StatusInternalServerError, codeInternal, "the operation failed"))
	case bd.Op.State == stateInProgress:
		return fail(errorf(http.StatusServiceUnavailable, codeInternal, "the broker is stopping; the operation resumes when it starts again"))
	case bd.Op.State == stateFailed:
		if bd.Op.Kind == opBind {
			// A failed synchronous binding leaves nothing behind.
			delete(b.st.Bindings, key)
			b.saveLocked()
		}
		return fail(errorf(http.StatusInternalServerError, codeInternal, "%s", bd.Op.Description))
	}
	return ok(success, bindingResponse(bd, false))
}

// getBinding handles GET .../service_bindings/:binding_id.
func (b *Broker) getBinding(r *http.Request, iid, bid string) result {
	if _, _, aerr := hintQuery(r, "service_id", "plan_id"); aerr != nil {
		return fail(aerr)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bd := b.st.Bindings[bindingKey(iid, bid)]
	if bd == nil || !bd.Created {
		return fail(errorf(http.StatusNotFound, codeNotFound, "binding %q of instance %q does not exist or is still being created", bid, iid))
	}
	return ok(http.StatusOK, bindingResponse(bd, true))
}

// unbind handles DELETE .../service_bindings/:binding_id.
func (b *Broker) unbind(r *http.Request, iid, bid string) result {
	async, aerr := acceptsIncomplete(r)
	if aerr != nil {
		return fail(aerr)
	}
	serviceID, planID, aerr := requiredIDs(r)
	if aerr != nil {
		return fail(aerr)
	}
	cat := b.catalog()
	key := bindingKey(iid, bid)
	b.mu.Lock()
	bd := b.st.Bindings[key]
	inst := b.st.Instances[iid]
	var aErr *apiError
	switch {
	case bd == nil || inst == nil:
		aErr = errorf(http.StatusGone, codeGone, "binding %q of instance %q does not exist", bid, iid)
	case serviceID != bd.ServiceID:
		aErr = badRequest("service_id %q is not the binding's service (%s)", serviceID, bd.ServiceID)
	case planID != bd.PlanID:
		aErr = badRequest("plan_id %q is not the binding's plan (%s)", planID, bd.PlanID)
	case bd.Op != nil && bd.Op.State == stateInProgress && bd.Op.Kind == opUnbind && async:
		op := bd.Op.ID
		b.mu.Unlock()
		return ok(http.StatusAccepted, asyncBody{Operation: op})
	case bd.Op != nil && bd.Op.State == stateInProgress:
		aErr = concurrencyError("Service Binding")
	case inst.Op != nil && inst.Op.State == stateInProgress:
		aErr = concurrencyError("Service Instance")
	}
	if aErr == nil {
		if o := cat.byID[inst.ServiceID]; o != nil {
			if p := o.plans[inst.PlanID]; p != nil && p.cfg.AsyncRequired && !async {
				aErr = asyncRequired()
			}
		}
	}
	if aErr != nil {
		b.mu.Unlock()
		return fail(aErr)
	}
	op := &Operation{ID: newOperationID(opUnbind), Kind: opUnbind, State: stateInProgress, Async: async, Started: b.now()}
	bd.Op = op
	if err := b.saveLocked(); err != nil {
		b.mu.Unlock()
		return fail(errorf(http.StatusInternalServerError, codeInternal, "persisting the unbinding: %v", err))
	}
	b.log.Info("unbinding", "instance", iid, "binding", bid, "principal", bd.Principal, "operation", op.ID, "async", async)
	if async {
		b.goBindingOp(iid, bid, op.ID)
		b.mu.Unlock()
		return ok(http.StatusAccepted, asyncBody{Operation: op.ID})
	}
	b.mu.Unlock()
	return b.syncBindingResult(iid, bid, op.ID, http.StatusOK)
}

// bindingLastOperation handles GET .../service_bindings/:binding_id/last_operation.
func (b *Broker) bindingLastOperation(r *http.Request, iid, bid string) result {
	if _, _, aerr := hintQuery(r, "service_id", "plan_id"); aerr != nil {
		return fail(aerr)
	}
	opID, hasOp, aerr := optionalQuery(r, "operation")
	if aerr != nil {
		return fail(aerr)
	}
	key := bindingKey(iid, bid)
	b.mu.Lock()
	defer b.mu.Unlock()
	bd := b.st.Bindings[key]
	if bd == nil {
		if _, gone := b.st.Gone["b/"+key]; gone {
			return fail(errorf(http.StatusGone, codeGone, "binding %q has been deleted", bid))
		}
		return fail(errorf(http.StatusNotFound, codeNotFound, "binding %q of instance %q does not exist", bid, iid))
	}
	if hasOp && opID != bd.Op.ID {
		return fail(badRequest("operation %q is not the last operation of binding %q", opID, bid))
	}
	lo := lastOperation(bd.Op)
	lo.InstanceUsable, lo.UpdateRepeatable = nil, nil
	return ok(http.StatusOK, lo)
}
