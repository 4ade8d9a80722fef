{{- define "realm.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "realm.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "realm.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The headless Service of the front ends' NATS servers. */}}
{{- define "realm.nats" -}}
{{ include "realm.fullname" . }}-nats
{{- end -}}

{{- define "realm.security" -}}
{{- if and (not .Values.security.existingSecret) (not .Values.security.allowInsecure) -}}
{{- fail "security: set security.existingSecret (tls.crt, tls.key, ca.crt, password) or security.allowInsecure=true: NATS between pods is off loopback" -}}
{{- end -}}
{{- end -}}
