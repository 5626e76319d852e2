{{- define "mast.labels" -}}
app.kubernetes.io/name: mastd
app.kubernetes.io/part-of: mast
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
