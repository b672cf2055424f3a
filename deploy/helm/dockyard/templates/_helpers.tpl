{{/* Names, labels and the environment every Dockyard pod shares. */}}

{{- define "dockyard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dockyard.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "dockyard.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dockyard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "dockyard.serviceName" -}}
{{- default (include "dockyard.fullname" .) .Values.expose.clusterIP.name -}}
{{- end -}}

{{- define "dockyard.secretName" -}}
{{- printf "%s-secret" (include "dockyard.fullname" .) -}}
{{- end -}}

{{- define "dockyard.adminSecretName" -}}
{{- default (include "dockyard.secretName" .) .Values.existingSecretAdminPassword -}}
{{- end -}}

{{- define "dockyard.tokenSecretName" -}}
{{- default (printf "%s-token" (include "dockyard.fullname" .)) .Values.tokenKey.existingSecret -}}
{{- end -}}

{{/* Database: host, port, user, name, sslmode and the secret with "password". */}}
{{- define "dockyard.database.host" -}}
{{- if eq .Values.database.type "internal" -}}
{{- printf "%s-database" (include "dockyard.fullname" .) -}}
{{- else -}}
{{- .Values.database.external.host -}}
{{- end -}}
{{- end -}}

{{- define "dockyard.database.passwordSecret" -}}
{{- if and (eq .Values.database.type "external") .Values.database.external.existingSecret -}}
{{- .Values.database.external.existingSecret -}}
{{- else -}}
{{- printf "%s-database" (include "dockyard.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "dockyard.database.url" -}}
{{- if eq .Values.database.type "internal" -}}
{{- printf "postgresql://dockyard:$(DATABASE_PASSWORD)@%s:5432/dockyard" (include "dockyard.database.host" .) -}}
{{- else -}}
{{- $e := .Values.database.external -}}
{{- printf "postgresql://%s:$(DATABASE_PASSWORD)@%s:%v/%s?sslmode=%s" $e.username $e.host $e.port $e.coreDatabase $e.sslmode -}}
{{- end -}}
{{- end -}}

{{/* Redis URL; the password (if any) comes from $(REDIS_PASSWORD). */}}
{{- define "dockyard.redis.url" -}}
{{- if eq .Values.redis.type "internal" -}}
{{- printf "redis://%s-redis:6379/0" (include "dockyard.fullname" .) -}}
{{- else -}}
{{- $e := .Values.redis.external -}}
{{- $scheme := ternary "rediss" "redis" $e.tlsOptions.enable -}}
{{- $auth := "" -}}
{{- if or $e.password $e.existingSecret -}}
{{- $auth = printf "%s:$(REDIS_PASSWORD)@" $e.username -}}
{{- end -}}
{{- printf "%s://%s%s/%v" $scheme $auth $e.addr $e.coreDatabaseIndex -}}
{{- end -}}
{{- end -}}

{{- define "dockyard.redis.passwordSecret" -}}
{{- default (include "dockyard.secretName" .) .Values.redis.external.existingSecret -}}
{{- end -}}

{{- define "dockyard.redis.hasPassword" -}}
{{- if and (eq .Values.redis.type "external") (or .Values.redis.external.password .Values.redis.external.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* Blob storage URL for DOCKYARD_STORAGE_URL. */}}
{{- define "dockyard.storage.url" -}}
{{- $s := .Values.persistence.imageChartStorage -}}
{{- if eq $s.type "filesystem" -}}
{{- printf "file://%s" $s.filesystem.rootdirectory -}}
{{- else if eq $s.type "s3" -}}
{{- printf "s3://%s/%s" $s.s3.bucket (trimPrefix "/" $s.s3.rootdirectory) | trimSuffix "/" -}}
{{- else if eq $s.type "gcs" -}}
{{- printf "gs://%s/%s" $s.gcs.bucket (trimPrefix "/" $s.gcs.rootdirectory) | trimSuffix "/" -}}
{{- else if eq $s.type "azure" -}}
{{- printf "az://%s/%s" $s.azure.container (trimPrefix "/" $s.azure.rootdirectory) | trimSuffix "/" -}}
{{- else -}}
{{- fail "persistence.imageChartStorage.type must be filesystem, s3, gcs or azure" -}}
{{- end -}}
{{- end -}}

{{- define "dockyard.storage.secretName" -}}
{{- $s := .Values.persistence.imageChartStorage -}}
{{- $existing := (index $s $s.type).existingSecret | default "" -}}
{{- default (printf "%s-storage" (include "dockyard.fullname" .)) $existing -}}
{{- end -}}

{{/* Environment shared by serve and worker pods. */}}
{{- define "dockyard.env" -}}
- name: DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "dockyard.database.passwordSecret" . }}
      key: password
{{- if include "dockyard.redis.hasPassword" . }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "dockyard.redis.passwordSecret" . }}
      key: REDIS_PASSWORD
{{- end }}
- name: DOCKYARD_DATABASE_URL
  value: {{ include "dockyard.database.url" . | quote }}
- name: DOCKYARD_REDIS_URL
  value: {{ include "dockyard.redis.url" . | quote }}
- name: DOCKYARD_ADMIN_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "dockyard.adminSecretName" . }}
      key: {{ .Values.existingSecretAdminPasswordKey }}
{{- $s := .Values.persistence.imageChartStorage }}
{{- if eq $s.type "s3" }}
{{- if or $s.s3.accesskey $s.s3.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "dockyard.storage.secretName" . }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "dockyard.storage.secretName" . }}
      key: AWS_SECRET_ACCESS_KEY
{{- end }}
{{- else if eq $s.type "azure" }}
- name: AZURE_STORAGE_ACCOUNT_NAME
  value: {{ $s.azure.accountname | quote }}
{{- if or $s.azure.accountkey $s.azure.existingSecret }}
- name: AZURE_STORAGE_ACCOUNT_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "dockyard.storage.secretName" . }}
      key: AZURE_STORAGE_ACCOUNT_KEY
{{- end }}
{{- else if and (eq $s.type "gcs") (or $s.gcs.encodedkey $s.gcs.existingSecret) }}
- name: GOOGLE_APPLICATION_CREDENTIALS
  value: /etc/dockyard/gcs/key.json
{{- end }}
{{- end -}}

{{/* Volumes shared by serve and worker pods. */}}
{{- define "dockyard.volumes" -}}
- name: data
  emptyDir: {}
- name: token-key
  secret:
    secretName: {{ include "dockyard.tokenSecretName" . }}
    defaultMode: 0400
{{- $s := .Values.persistence.imageChartStorage }}
{{- if eq $s.type "filesystem" }}
- name: registry
  {{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-registry" (include "dockyard.fullname" .)) .Values.persistence.persistentVolumeClaim.registry.existingClaim }}
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- else if and (eq $s.type "gcs") (or $s.gcs.encodedkey $s.gcs.existingSecret) }}
- name: gcs-key
  secret:
    secretName: {{ include "dockyard.storage.secretName" . }}
    items:
      - key: GCS_KEY_JSON
        path: key.json
{{- end }}
{{- end -}}

{{- define "dockyard.volumeMounts" -}}
- name: data
  mountPath: /var/lib/dockyard
- name: token-key
  mountPath: /etc/dockyard/keys
  readOnly: true
{{- $s := .Values.persistence.imageChartStorage }}
{{- if eq $s.type "filesystem" }}
- name: registry
  mountPath: {{ $s.filesystem.rootdirectory }}
  subPath: {{ .Values.persistence.persistentVolumeClaim.registry.subPath | quote }}
{{- else if and (eq $s.type "gcs") (or $s.gcs.encodedkey $s.gcs.existingSecret) }}
- name: gcs-key
  mountPath: /etc/dockyard/gcs
  readOnly: true
{{- end }}
{{- end -}}

{{/* Refuse combinations that cannot work. */}}
{{- define "dockyard.validate" -}}
{{- $s := .Values.persistence.imageChartStorage -}}
{{- $claim := .Values.persistence.persistentVolumeClaim.registry -}}
{{- $many := or (gt (int .Values.core.replicas) 1) (gt (int .Values.jobservice.replicas) 1) -}}
{{- $shared := and .Values.persistence.enabled (or $claim.existingClaim (eq $claim.accessMode "ReadWriteMany")) -}}
{{- if and (eq $s.type "filesystem") $many (not $shared) -}}
{{- fail "filesystem storage with more than one core or jobservice replica needs persistence.persistentVolumeClaim.registry.accessMode ReadWriteMany (or an existingClaim that is); or use s3, gcs or azure" -}}
{{- end -}}
{{- if and (eq $s.type "filesystem") (not .Values.persistence.enabled) (gt (int .Values.jobservice.replicas) 0) -}}
{{- fail "filesystem storage without persistence gives each pod its own empty storage: enable persistence or use s3, gcs or azure" -}}
{{- end -}}
{{- if not (has .Values.database.type (list "internal" "external")) -}}
{{- fail "database.type must be internal or external" -}}
{{- end -}}
{{- if not (has .Values.redis.type (list "internal" "external")) -}}
{{- fail "redis.type must be internal or external" -}}
{{- end -}}
{{- end -}}

{{/* Filesystem storage on a ReadWriteOnce claim: the worker must run on the
node that has it mounted (the core pod's). */}}
{{- define "dockyard.worker.affinity" -}}
{{- $claim := .Values.persistence.persistentVolumeClaim.registry -}}
{{- if .Values.jobservice.affinity -}}
{{- toYaml .Values.jobservice.affinity -}}
{{- else if and (eq .Values.persistence.imageChartStorage.type "filesystem") .Values.persistence.enabled (ne $claim.accessMode "ReadWriteMany") -}}
podAffinity:
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- include "dockyard.selectorLabels" . | nindent 10 }}
          app.kubernetes.io/component: core
{{- end -}}
{{- end -}}
