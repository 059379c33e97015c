{{/*
PromQL label matchers picking this release's series. Scraped through the chart's ServiceMonitor, a
target carries job=<Service name> (the full name) and namespace=<the Service's namespace>.
*/}}
{{- define "files-gateway.metricsSelector" -}}
{{- .Values.metrics.prometheusRule.selector | default (printf "job=%q,namespace=%q" (include "files-gateway.fullname" .) .Release.Namespace) }}
{{- end }}

{{/*
The window the sweeper alerts look back over: the value given, else three sweep intervals and at
least 15 minutes, so a sweep that is merely late does not count as a missing one.
Takes (dict "window" <value> "root" $).
*/}}
{{- define "files-gateway.sweepWindow" -}}
{{- if .window }}{{ .window }}{{ else }}
{{- $s := max 900 (mul 3 (int .root.Values.config.sweepIntervalSeconds)) }}
{{- if eq (mod $s 3600) 0 }}{{ div $s 3600 }}h{{ else if eq (mod $s 60) 0 }}{{ div $s 60 }}m{{ else }}{{ $s }}s{{ end }}
{{- end }}
{{- end }}

{{/* Labels of one alert: its severity and the extra alert labels. Takes (dict "severity" <s> "root" $). */}}
{{- define "files-gateway.alertLabels" -}}
severity: {{ .severity | quote }}
{{- with .root.Values.metrics.prometheusRule.alertLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The runbook of one alert: a hint naming the section of docs/operations.md to read, and a
runbook_url to it when metrics.prometheusRule.runbookBaseUrl says where that document is served.
Takes (dict "hint" <text> "section" <heading> "anchor" <anchor> "root" $).
*/}}
{{- define "files-gateway.runbook" -}}
runbook: {{ printf "%s See docs/operations.md, \"%s\"." .hint .section | quote }}
{{- with .root.Values.metrics.prometheusRule.runbookBaseUrl }}
runbook_url: {{ printf "%s#%s" . $.anchor | quote }}
{{- end }}
{{- end }}
