{{/* Full name of the release's objects. */}}
{{- define "natrix.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "natrix.serviceAccountName" -}}
{{- default (printf "%s-operator" (include "natrix.fullname" .)) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "natrix.selectorLabels" -}}
app.kubernetes.io/name: natrix-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "natrix.labels" -}}
{{ include "natrix.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
