package jwtauthn

// Status is the outcome of verifying one token or one requirement. Its
// text is the body of the local reply, word for word as Envoy's
// jwt_verify_lib spells it, so clients and tests written against Envoy
// see the same responses.
type Status uint8

// Statuses, in the order of jwt_verify_lib's.
const (
	StatusOK Status = iota
	StatusMissing
	StatusNotYetValid
	StatusExpired
	StatusBadFormat
	StatusHeaderBadBase64
	StatusHeaderBadJSON
	StatusHeaderBadAlg
	StatusHeaderNotImplementedAlg
	StatusHeaderBadKid
	StatusPayloadBadBase64
	StatusPayloadBadJSON
	StatusPayloadIssNotString
	StatusPayloadSubNotString
	StatusPayloadAzpNotString
	StatusPayloadAudNotString
	StatusPayloadExpNotInteger
	StatusPayloadNbfNotInteger
	StatusPayloadIatNotInteger
	StatusSignatureBadBase64
	StatusUnknownIssuer
	StatusAudienceNotAllowed
	StatusVerificationFail
	StatusKidAlgMismatch
	StatusJwksFetchFail
	StatusNoValidKeys
	StatusExpRequired
)

var statusText = [...]string{
	StatusOK:                      "OK",
	StatusMissing:                 "Jwt is missing",
	StatusNotYetValid:             "Jwt not yet valid",
	StatusExpired:                 "Jwt is expired",
	StatusBadFormat:               "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections",
	StatusHeaderBadBase64:         "Jwt header is an invalid Base64url encoded",
	StatusHeaderBadJSON:           "Jwt header is an invalid JSON",
	StatusHeaderBadAlg:            "Jwt header [alg] field is required and must be a string",
	StatusHeaderNotImplementedAlg: "Jwt header [alg] is not supported",
	StatusHeaderBadKid:            "Jwt header [kid] field is not a string",
	StatusPayloadBadBase64:        "Jwt payload is an invalid Base64url encoded",
	StatusPayloadBadJSON:          "Jwt payload is an invalid JSON",
	StatusPayloadIssNotString:     "Jwt payload [iss] field is not a string",
	StatusPayloadSubNotString:     "Jwt payload [sub] field is not a string",
	StatusPayloadAzpNotString:     "Jwt payload [azp] field is not a string",
	StatusPayloadAudNotString:     "Jwt payload [aud] field is not a string or string list",
	StatusPayloadExpNotInteger:    "Jwt payload [exp] field is not an integer",
	StatusPayloadNbfNotInteger:    "Jwt payload [nbf] field is not an integer",
	StatusPayloadIatNotInteger:    "Jwt payload [iat] field is not an integer",
	StatusSignatureBadBase64:      "Jwt signature is an invalid Base64url encoded",
	StatusUnknownIssuer:           "Jwt issuer is not configured",
	StatusAudienceNotAllowed:      "Audiences in Jwt are not allowed",
	StatusVerificationFail:        "Jwt verification fails",
	StatusKidAlgMismatch:          "Jwks doesn't have key to match kid or alg from Jwt",
	StatusJwksFetchFail:           "Jwks remote fetch is failed",
	StatusNoValidKeys:             "Jwks doesn't have valid keys",
	StatusExpRequired:             "Jwt payload [exp] field is required",
}

func (s Status) String() string {
	if int(s) < len(statusText) {
		return statusText[s]
	}
	return "Jwt verification fails"
}

// HTTPStatus is the status code of the local reply for s: 403 for a
// disallowed audience, 401 for everything else (as Envoy).
func (s Status) HTTPStatus() int {
	if s == StatusAudienceNotAllowed {
		return 403
	}
	return 401
}
