{{/*
Names. The release's objects are called <release>-api (or fullnameOverride); a color
variant's Deployment, ConfigMap, HPA and PDB add -<color>.
*/}}
{{- define "api.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "api.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if eq .Release.Name (include "api.name" .) -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "api.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "api.colorName" -}}
{{- if .Values.color -}}
{{- printf "%s-%s" (include "api.fullname" .) .Values.color | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- include "api.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "api.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "api.fullname" .) -}}
{{- end -}}

{{- define "api.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-credentials" (include "api.fullname" .)) -}}
{{- end -}}

{{/* Labels shared by every object of the release. */}}
{{- define "api.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ .Values.partOf }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{ include "api.instanceLabels" . }}
{{- end -}}

{{/* The pods of every color of this release. */}}
{{- define "api.instanceLabels" -}}
app.kubernetes.io/name: {{ include "api.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The pods of the color this render deploys. */}}
{{- define "api.selectorLabels" -}}
{{ include "api.instanceLabels" . }}
{{- if .Values.color }}
color: {{ .Values.color }}
{{- end }}
{{- end -}}

{{- define "api.image" -}}
{{- $image := .Values.image -}}
{{- if $image.tag -}}
{{- printf "%s:%s@%s" $image.repository $image.tag $image.digest -}}
{{- else -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- end -}}
{{- end -}}

{{/* A container securityContext that meets the restricted profile. */}}
{{- define "api.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "api.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Egress to the cluster DNS. */}}
{{- define "api.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .Values.networkPolicy.dns.namespace }}
      podSelector:
        matchLabels:
          {{- toYaml .Values.networkPolicy.dns.podLabels | nindent 10 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end -}}

{{/* A NetworkPolicy peer: pods with these labels, in this namespace or the release's. */}}
{{- define "api.peer" -}}
- podSelector:
    matchLabels:
      {{- toYaml .podLabels | nindent 6 }}
  {{- if .namespace }}
  namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .namespace }}
  {{- end }}
{{- end -}}
