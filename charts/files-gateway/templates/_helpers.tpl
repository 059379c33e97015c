{{/* Chart name, truncated to the 63 characters DNS labels allow. */}}
{{- define "files-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, unless it already contains the chart name. */}}
{{- define "files-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "files-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. helm.sh/chart changes on upgrade, so it never goes into selectors. */}}
{{- define "files-gateway.labels" -}}
helm.sh/chart: {{ include "files-gateway.chart" . }}
{{ include "files-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llama-stack
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels: immutable once a Deployment exists. */}}
{{- define "files-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "files-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "files-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "files-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "files-gateway.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end }}

{{- define "files-gateway.pvcName" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-data" (include "files-gateway.fullname" .)) }}
{{- end }}

{{/*
Configurations that cannot work, stopped at render time rather than at 3 a.m.
SQLite is a file on a ReadWriteOnce volume: a second replica would either not start (volume
attached elsewhere) or keep its own diverging catalog. Several replicas need a shared catalog.
*/}}
{{- define "files-gateway.validate" -}}
{{- if eq .Values.catalog.type "sqlite" }}
{{- if gt (int .Values.replicaCount) 1 }}
{{- fail (printf "replicaCount=%d needs a shared catalog: the SQLite catalog lives on one pod's volume. Set catalog.type=postgres (PostgreSQL) to run several replicas, or keep replicaCount=1." (int .Values.replicaCount)) }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- fail "autoscaling.enabled=true needs a shared catalog: the SQLite catalog lives on one pod's volume. Set catalog.type=postgres (PostgreSQL) to autoscale, or disable autoscaling." }}
{{- end }}
{{- end }}
{{- if and (eq .Values.catalog.type "postgres") (not .Values.catalog.postgres.existingSecret) }}
{{- fail "catalog.type=postgres needs catalog.postgres.existingSecret: the name of a Secret holding the PostgreSQL URL." }}
{{- end }}
{{- if and (eq .Values.storage.type "fs") (or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled) }}
{{- fail "storage.type=fs keeps file bytes on one pod's volume: several replicas need storage.type=s3." }}
{{- end }}
{{- if and (eq .Values.storage.type "s3") (not .Values.s3.bucket) }}
{{- fail "storage.type=s3 needs s3.bucket." }}
{{- end }}
{{- end }}

{{/* Whether the chart mounts a volume at /data that outlives the pod. */}}
{{- define "files-gateway.needsData" -}}
{{- if or (eq .Values.catalog.type "sqlite") (eq .Values.storage.type "fs") }}true{{ end }}
{{- end }}

{{/*
Pod security context. OpenShift's restricted-v2 SCC assigns the UID and fsGroup from the
namespace's range, so none is set here: runAsNonRoot is enough for the kubelet to refuse root.
*/}}
{{- define "files-gateway.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{/*
API keys: only the one Secret key is projected, as a file in a folder of its own. The default
file mode (0644) is kept: without an fsGroup (plain Kubernetes) the file belongs to root while the
pod runs as another UID, so 0400 would lock the gateway out. Shared by the Deployment and the
helm test pod.
*/}}
{{- define "files-gateway.apiKeysDir" -}}
/etc/files-gateway/auth
{{- end }}

{{- define "files-gateway.apiKeysFile" -}}
{{ include "files-gateway.apiKeysDir" . }}/api-keys
{{- end }}

{{- define "files-gateway.apiKeysVolume" -}}
secret:
  secretName: {{ tpl .Values.auth.existingSecret . | quote }}
  items:
    - key: {{ .Values.auth.keysKey | quote }}
      path: api-keys
{{- end }}

{{/*
A byte size as an env value. Helm reads numbers in values files as float64, so a plain `quote`
would turn 5368709120 into "5.36870912e+09", which the gateway rejects: whole numbers are printed
as integers, strings with units (512MiB) pass unchanged.
*/}}
{{- define "files-gateway.bytes" -}}
{{- if kindIs "string" . }}{{ quote . }}{{ else }}{{ int64 . | toString | quote }}{{ end }}
{{- end }}
