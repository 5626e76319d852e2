package broker

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// The error codes the OSB specification names (section "Service Broker
// Errors"); a broker MUST use them for these conditions.
const (
	CodeAsyncRequired           = "AsyncRequired"
	CodeConcurrencyError        = "ConcurrencyError"
	CodeRequiresApp             = "RequiresApp"
	CodeMaintenanceInfoConflict = "MaintenanceInfoConflict"
)

// Codes Mast uses for the other failures: single camel-case words, as the
// specification asks of the error field.
const (
	codeBadRequest         = "BadRequest"
	codeUnauthorized       = "Unauthorized"
	codeNotFound           = "NotFound"
	codeConflict           = "Conflict"
	codeGone               = "Gone"
	codePreconditionFailed = "PreconditionFailed"
	codeTooLarge           = "RequestTooLarge"
	codeMethodNotAllowed   = "MethodNotAllowed"
	codeNotSupported       = "PlanChangeNotSupported"
	codeInternal           = "InternalError"
)

// apiError is a failure mapped to its HTTP status and the specification's
// error body. Handlers return it; writeError is the only place that turns
// it into a response.
type apiError struct {
	status      int
	code        string
	description string
	// Only for failed updates and deprovisions (the specification forbids
	// these fields elsewhere).
	instanceUsable   *bool
	updateRepeatable *bool
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.description) }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, description: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, codeBadRequest, format, args...)
}

// errorBody is the specification's error response.
type errorBody struct {
	Error            string `json:"error,omitempty"`
	Description      string `json:"description,omitempty"`
	InstanceUsable   *bool  `json:"instance_usable,omitempty"`
	UpdateRepeatable *bool  `json:"update_repeatable,omitempty"`
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, errorBody{Error: e.code, Description: e.description, InstanceUsable: e.instanceUsable, UpdateRepeatable: e.updateRepeatable})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":"InternalError","description":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func boolp(b bool) *bool { return &b }
