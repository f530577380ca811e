{{/*
Names. The release's objects are called <release>-kafka (or fullnameOverride).
*/}}
{{- define "kafka.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kafka.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if eq .Release.Name (include "kafka.name" .) -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "kafka.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kafka.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "kafka.fullname" .) -}}
{{- end -}}

{{/* Labels shared by every object of the release. */}}
{{- define "kafka.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ .Values.partOf }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{ include "kafka.selectorLabels" . }}
{{- end -}}

{{/* The Kafka nodes. */}}
{{- define "kafka.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kafka.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kafka.image" -}}
{{- $image := .Values.image -}}
{{- if $image.tag -}}
{{- printf "%s:%s@%s" $image.repository $image.tag $image.digest -}}
{{- else -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- end -}}
{{- end -}}

{{/* A container securityContext that meets the restricted profile. */}}
{{- define "kafka.containerSecurityContext" -}}
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

{{- define "kafka.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Egress to the cluster DNS. */}}
{{- define "kafka.dnsEgress" -}}
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
{{- define "kafka.peer" -}}
- podSelector:
    matchLabels:
      {{- toYaml .podLabels | nindent 6 }}
  {{- if .namespace }}
  namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .namespace }}
  {{- end }}
{{- end -}}

{{/* DNS name of node N (headless Service). */}}
{{- define "kafka.nodeHost" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%d.%s-headless.%s.svc.%s" (include "kafka.fullname" $root) (index . 1) (include "kafka.fullname" $root) $root.Release.Namespace $root.Values.clusterDomain -}}
{{- end -}}

{{/* Replication settings follow the number of nodes: 3 copies and 2 in sync from 3 nodes up. */}}
{{- define "kafka.replicationFactor" -}}
{{- min 3 .Values.replicaCount -}}
{{- end -}}

{{- define "kafka.minInsyncReplicas" -}}
{{- if ge (int .Values.replicaCount) 3 }}2{{ else }}1{{ end -}}
{{- end -}}
