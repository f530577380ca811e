{{/*
Names. The release's objects are called <release>-postgres (or fullnameOverride); the
backup's and restore's objects add -backup and -restore.
*/}}
{{- define "postgres.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "postgres.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if eq .Release.Name (include "postgres.name" .) -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "postgres.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "postgres.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "postgres.fullname" .) -}}
{{- end -}}

{{- define "postgres.secretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "postgres.fullname" .)) -}}
{{- end -}}

{{/* Labels shared by every object of the release. */}}
{{- define "postgres.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ .Values.partOf }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{ include "postgres.selectorLabels" . }}
{{- end -}}

{{/* The database pods. */}}
{{- define "postgres.selectorLabels" -}}
app.kubernetes.io/name: {{ include "postgres.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The backup and restore pods (a name of their own, so that clients of the database never select them). */}}
{{- define "postgres.backupSelectorLabels" -}}
app.kubernetes.io/name: {{ include "postgres.name" . }}-backup
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "postgres.backupLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ .Values.partOf }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{ include "postgres.backupSelectorLabels" . }}
{{- end -}}

{{- define "postgres.backupImage" -}}
{{- $image := .Values.backup.image -}}
{{- if $image.tag -}}
{{- printf "%s:%s@%s" $image.repository $image.tag $image.digest -}}
{{- else -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- end -}}
{{- end -}}

{{/* Environment of pg_dump and pg_restore: where the database is, and the password by reference. */}}
{{- define "postgres.clientEnv" -}}
- name: PGHOST
  value: {{ include "postgres.fullname" . }}
- name: PGPORT
  value: {{ .Values.service.port | quote }}
- name: PGUSER
  value: {{ .Values.auth.username | quote }}
- name: PGDATABASE
  value: {{ .Values.auth.database | quote }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "postgres.secretName" . }}
      key: {{ .Values.auth.passwordKey }}
- name: BACKUP_TARGET
  value: {{ .Values.backup.target }}
- name: BACKUP_PREFIX
  value: {{ include "postgres.fullname" . }}
{{- if eq .Values.backup.target "objectStore" }}
{{- $store := .Values.backup.objectStore }}
- name: BACKUP_BUCKET
  value: {{ $store.bucket | quote }}
- name: BACKUP_OBJECT_PREFIX
  value: {{ $store.prefix | quote }}
- name: AWS_ENDPOINT_URL
  value: {{ $store.endpoint | quote }}
- name: AWS_REGION
  value: {{ $store.region | quote }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $store.credentialsSecret }}
      key: {{ $store.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $store.credentialsSecret }}
      key: {{ $store.secretAccessKeyKey }}
{{- end }}
{{- end -}}

{{/* Volumes of the backup and restore pods. */}}
{{- define "postgres.backupVolumes" -}}
- name: scripts
  configMap:
    name: {{ include "postgres.fullname" . }}-backup
    defaultMode: 0555
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.backup.tmpSize }}
{{- if eq .Values.backup.target "pvc" }}
- name: backups
  persistentVolumeClaim:
    claimName: {{ .Values.backup.pvc.existingClaim | default (printf "%s-backups" (include "postgres.fullname" .)) }}
{{- end }}
{{- end -}}

{{- define "postgres.image" -}}
{{- $image := .Values.image -}}
{{- if $image.tag -}}
{{- printf "%s:%s@%s" $image.repository $image.tag $image.digest -}}
{{- else -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- end -}}
{{- end -}}

{{/* A container securityContext that meets the restricted profile. */}}
{{- define "postgres.containerSecurityContext" -}}
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

{{- define "postgres.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Egress to the cluster DNS. */}}
{{- define "postgres.dnsEgress" -}}
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
{{- define "postgres.peer" -}}
- podSelector:
    matchLabels:
      {{- toYaml .podLabels | nindent 6 }}
  {{- if .namespace }}
  namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .namespace }}
  {{- end }}
{{- end -}}
