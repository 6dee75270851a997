{{/*
Names, labels and the pieces every ethpipe pod shares (server, backfill,
CronJobs): environment, volumes, the wait-for-database init container.
*/}}

{{- define "ethpipe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object name prefix; short enough for "<fullname>-backfill-<hash>" (63). */}}
{{- define "ethpipe.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ethpipe.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{- define "ethpipe.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ethpipe.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ethpipe.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ethpipe.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ethpipe.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ethpipe.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
An image reference from {repository, tag, digest}; the tag defaults to
$default. "latest" is refused: every image is pinned.
*/}}
{{- define "ethpipe.imageRef" -}}
{{- $image := index . 0 -}}
{{- $default := index . 1 -}}
{{- $what := index . 2 -}}
{{- $tag := default $default $image.tag | toString -}}
{{- if or (eq $tag "latest") (eq $tag "") -}}
{{- fail (printf "%s.tag: '%s' is not a pinned version; set a version (or a digest)" $what $tag) -}}
{{- end -}}
{{- if $image.digest -}}
{{- if not (regexMatch "^sha256:[0-9a-f]{64}$" $image.digest) -}}
{{- fail (printf "%s.digest must look like sha256:<64 hex digits>" $what) -}}
{{- end -}}
{{- printf "%s:%s@%s" $image.repository $tag $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "ethpipe.image" -}}
{{- include "ethpipe.imageRef" (list .Values.image .Chart.AppVersion "image") -}}
{{- end -}}

{{- define "ethpipe.postgresql.image" -}}
{{- include "ethpipe.imageRef" (list .Values.postgresql.image "" "postgresql.image") -}}
{{- end -}}

{{/* Secret names (an existing Secret or the one the chart makes). */}}
{{- define "ethpipe.apiTokenSecret" -}}
{{- default (printf "%s-api-token" (include "ethpipe.fullname" .)) .Values.apiToken.existingSecret -}}
{{- end -}}
{{- define "ethpipe.apiTokenKey" -}}
{{- if .Values.apiToken.existingSecret -}}{{ .Values.apiToken.existingSecretKey }}{{- else -}}token{{- end -}}
{{- end -}}

{{- define "ethpipe.gcpKeySecret" -}}
{{- default (printf "%s-gcp-key" (include "ethpipe.fullname" .)) .Values.gcp.existingSecret -}}
{{- end -}}
{{- define "ethpipe.gcpKeyKey" -}}
{{- if .Values.gcp.existingSecret -}}{{ .Values.gcp.existingSecretKey }}{{- else -}}key.json{{- end -}}
{{- end -}}
{{/* True when a key file is mounted (source bigquery and a key given). */}}
{{- define "ethpipe.gcpKeyMounted" -}}
{{- if and (eq .Values.source.type "bigquery") (or .Values.gcp.key .Values.gcp.existingSecret) -}}true{{- end -}}
{{- end -}}

{{- define "ethpipe.rpcSecret" -}}
{{- default (printf "%s-rpc" (include "ethpipe.fullname" .)) .Values.source.rpc.existingSecret -}}
{{- end -}}
{{- define "ethpipe.rpcKey" -}}
{{- if .Values.source.rpc.existingSecret -}}{{ .Values.source.rpc.existingSecretKey }}{{- else -}}url{{- end -}}
{{- end -}}

{{- define "ethpipe.databaseSecret" -}}
{{- default (printf "%s-database" (include "ethpipe.fullname" .)) .Values.database.external.existingSecret -}}
{{- end -}}
{{- define "ethpipe.databaseKey" -}}
{{- if .Values.database.external.existingSecret -}}{{ .Values.database.external.existingSecretKey }}{{- else -}}database-url{{- end -}}
{{- end -}}

{{- define "ethpipe.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "ethpipe.fullname" .) -}}
{{- end -}}
{{- define "ethpipe.postgresql.secret" -}}
{{- default (include "ethpipe.postgresql.fullname" .) .Values.postgresql.auth.existingSecret -}}
{{- end -}}
{{- define "ethpipe.postgresql.secretKey" -}}
{{- if .Values.postgresql.auth.existingSecret -}}{{ .Values.postgresql.auth.existingSecretKey }}{{- else -}}password{{- end -}}
{{- end -}}

{{/* Configuration mistakes, refused at render time with one clear line. */}}
{{- define "ethpipe.validate" -}}
{{- if and .Values.gcp.key .Values.gcp.existingSecret -}}
{{- fail "gcp: set either gcp.key (--set-file gcp.key=key.json) or gcp.existingSecret, not both" -}}
{{- end -}}
{{- if eq .Values.source.type "rpc" -}}
{{- if not (or .Values.source.rpc.url .Values.source.rpc.existingSecret) -}}
{{- fail "source.type=rpc needs source.rpc.url or source.rpc.existingSecret" -}}
{{- end -}}
{{- if and .Values.source.rpc.url .Values.source.rpc.existingSecret -}}
{{- fail "source.rpc: set either url or existingSecret, not both" -}}
{{- end -}}
{{- end -}}
{{- if not .Values.postgresql.enabled -}}
{{- if not (or .Values.database.external.url .Values.database.external.existingSecret) -}}
{{- fail "postgresql.enabled=false needs database.external.url or database.external.existingSecret (a postgres:// URL)" -}}
{{- end -}}
{{- if and .Values.database.external.url .Values.database.external.existingSecret -}}
{{- fail "database.external: set either url or existingSecret, not both" -}}
{{- end -}}
{{- if and .Values.database.external.url (not (regexMatch "^postgres(ql)?://" .Values.database.external.url)) -}}
{{- fail "database.external.url must be a postgres:// URL (backfill workers need PostgreSQL)" -}}
{{- end -}}
{{- end -}}
{{- if .Values.backfill.enabled -}}
{{- $day := "^[0-9]{4}-[0-9]{2}-[0-9]{2}$" -}}
{{- if not (and (regexMatch $day (toString .Values.backfill.from)) (regexMatch $day (toString .Values.backfill.to))) -}}
{{- fail (printf "backfill.from and backfill.to must be UTC days YYYY-MM-DD (got from='%v', to='%v')" .Values.backfill.from .Values.backfill.to) -}}
{{- end -}}
{{- if gt (toString .Values.backfill.from) (toString .Values.backfill.to) -}}
{{- fail (printf "backfill.from (%s) is after backfill.to (%s)" .Values.backfill.from .Values.backfill.to) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The pipelines that CronJobs load (their triggers are written inactive). */}}
{{- define "ethpipe.cronPipelines" -}}
{{- $pipelines := list -}}
{{- if .Values.cronjobs.enabled -}}
{{- range .Values.cronjobs.jobs -}}
{{- $pipelines = append $pipelines .pipeline -}}
{{- end -}}
{{- end -}}
{{- toJson $pipelines -}}
{{- end -}}

{{/*
Environment of every ethpipe container. The database URL is assembled from
a secretKeyRef variable with Kubernetes' $(VAR) expansion, or read whole
from a Secret: no password is ever written into the manifest.
*/}}
{{- define "ethpipe.env" -}}
- name: ETHPIPE_CONFIG
  value: /etc/ethpipe/config/ethpipe.toml
- name: ETHPIPE_LOG
  value: {{ .Values.config.log | quote }}
{{- if .Values.postgresql.enabled }}
- name: ETHPIPE_DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ethpipe.postgresql.secret" . }}
      key: {{ include "ethpipe.postgresql.secretKey" . }}
- name: ETHPIPE_DATABASE_URL
  value: {{ printf "postgres://%s:$(ETHPIPE_DATABASE_PASSWORD)@%s.%s.svc:%d/%s" .Values.postgresql.auth.username (include "ethpipe.postgresql.fullname" .) (include "ethpipe.namespace" .) (int .Values.postgresql.port) .Values.postgresql.auth.database | quote }}
{{- else }}
- name: ETHPIPE_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "ethpipe.databaseSecret" . }}
      key: {{ include "ethpipe.databaseKey" . }}
{{- end }}
{{- if eq .Values.source.type "rpc" }}
- name: ETHPIPE_RPC_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "ethpipe.rpcSecret" . }}
      key: {{ include "ethpipe.rpcKey" . }}
{{- end }}
{{- if include "ethpipe.gcpKeyMounted" . }}
- name: GOOGLE_APPLICATION_CREDENTIALS
  value: {{ printf "%s/key.json" .Values.gcp.mountPath | quote }}
{{- end }}
{{- with .Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "ethpipe.volumeMounts" -}}
- name: config
  mountPath: /etc/ethpipe/config
  readOnly: true
{{- if .Values.config.models }}
- name: models
  mountPath: /etc/ethpipe/models
  readOnly: true
{{- end }}
{{- if include "ethpipe.gcpKeyMounted" . }}
- name: gcp-key
  mountPath: {{ .Values.gcp.mountPath }}
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end -}}

{{- define "ethpipe.volumes" -}}
- name: config
  configMap:
    name: {{ include "ethpipe.fullname" . }}-config
{{- if .Values.config.models }}
- name: models
  configMap:
    name: {{ include "ethpipe.fullname" . }}-models
    items:
    {{- range $pipeline, $files := .Values.config.models }}
    {{- range $file, $sql := $files }}
      - key: {{ printf "%s__%s" $pipeline $file }}
        path: {{ printf "%s/%s" $pipeline $file }}
    {{- end }}
    {{- end }}
{{- end }}
{{- if include "ethpipe.gcpKeyMounted" . }}
- name: gcp-key
  secret:
    secretName: {{ include "ethpipe.gcpKeySecret" . }}
    defaultMode: 0440
    items:
      - key: {{ include "ethpipe.gcpKeyKey" . }}
        path: key.json
{{- end }}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
{{- end -}}

{{/*
Init container: `ethpipe migrate` until the database answers (bounded), so
the main container starts against a reachable, migrated database. "$$" is
Kubernetes' escape for "$" in a command (it expands $(VAR) itself).
*/}}
{{- define "ethpipe.waitForDatabase" -}}
{{- with .Values.extraInitContainers }}
{{ toYaml . }}
{{- end }}
- name: wait-for-database
  image: {{ include "ethpipe.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command:
    - /bin/sh
    - -c
    - |
      i=0
      until ethpipe migrate; do
        i=$$((i + 1))
        if [ "$i" -ge {{ int .Values.waitForDatabase.attempts }} ]; then
          echo "the database did not answer after $i attempts" >&2
          exit 1
        fi
        sleep {{ int .Values.waitForDatabase.intervalSeconds }}
      done
  env:
    {{- include "ethpipe.env" . | nindent 4 }}
  volumeMounts:
    {{- include "ethpipe.volumeMounts" . | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  resources:
    requests:
      cpu: 50m
      memory: 64Mi
    limits:
      cpu: 500m
      memory: 256Mi
{{- end -}}

{{/* Pod-level fields shared by the server, backfill and CronJob pods. */}}
{{- define "ethpipe.podCommon" -}}
serviceAccountName: {{ include "ethpipe.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* HOST part of --bind: IPv6 addresses need brackets. */}}
{{- define "ethpipe.bindHost" -}}
{{- if contains ":" .Values.server.bindAddress -}}
{{- printf "[%s]" (.Values.server.bindAddress | trimPrefix "[" | trimSuffix "]") -}}
{{- else -}}
{{- .Values.server.bindAddress -}}
{{- end -}}
{{- end -}}
