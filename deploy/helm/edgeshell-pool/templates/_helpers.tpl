{{/* The runners' namespace: runners.namespace, else the release's. */}}
{{- define "edgeshell-pool.runnerNamespace" -}}
{{- default .Release.Namespace .Values.runners.namespace -}}
{{- end -}}

{{/* Labels of the agents' objects. */}}
{{- define "edgeshell-pool.agentLabels" -}}
app.kubernetes.io/name: edgeshell-pool-agent
app.kubernetes.io/instance: {{ .Release.Name }}
edgeshell.dev/pool: {{ .Values.region | quote }}
{{- end -}}

{{/* Pod Security "restricted", on every namespace the chart labels. */}}
{{- define "edgeshell-pool.podSecurity" -}}
pod-security.kubernetes.io/enforce: restricted
pod-security.kubernetes.io/audit: restricted
{{- end -}}
