{{/* The release's name prefix: the release name, with "-eventmart" unless it holds it. */}}
{{- define "eventmart.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; the selector labels are a subset. */}}
{{- define "eventmart.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: eventmart
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Selector labels of a component: dict "root" $ "component" NAME. */}}
{{- define "eventmart.selectorLabels" -}}
app.kubernetes.io/name: eventmart
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "eventmart.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "eventmart.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "eventmart.fullname" .)) -}}
{{- end -}}

{{/*
EVENTMART_SERVICE_URLS: every service at its ClusterIP Service, which
spreads requests over the service's ready pods.
*/}}
{{- define "eventmart.serviceURLs" -}}
{{- $root := . -}}
{{- $urls := list -}}
{{- range $name, $_ := .Values.services -}}
{{- $urls = append $urls (printf "%s=http://%s-%s:8080" $name (include "eventmart.fullname" $root) $name) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}

{{/*
The environment every Eventmart process shares: declared settings only
(internal/settings), secrets from the Secret. Checks the timeouts.
*/}}
{{- define "eventmart.env" -}}
{{- if gt (mul 2 (int .Values.sessionTimeoutSeconds)) (int .Values.sagaTimeoutSeconds) -}}
{{- fail (printf "sessionTimeoutSeconds (%v) must be at most half of sagaTimeoutSeconds (%v): a stopped static member keeps its partitions that long" .Values.sessionTimeoutSeconds .Values.sagaTimeoutSeconds) -}}
{{- end -}}
- name: EVENTMART_ADDR
  value: "0.0.0.0:8080"
- name: EVENTMART_DATA
  value: /data
- name: EVENTMART_BUS
  value: {{ printf "kafka://%s" (required "kafka.bootstrap: the Kafka brokers, host:port,…" .Values.kafka.bootstrap) | quote }}
{{- with .Values.kafka.replicationFactor }}
- name: EVENTMART_REPLICATION_FACTOR
  value: {{ . | quote }}
{{- end }}
{{- with .Values.kafka.minInsyncReplicas }}
- name: EVENTMART_MIN_INSYNC_REPLICAS
  value: {{ . | quote }}
{{- end }}
- name: EVENTMART_SESSION_TIMEOUT
  value: {{ printf "%ds" (int .Values.sessionTimeoutSeconds) | quote }}
- name: EVENTMART_SERVICE_URLS
  value: {{ include "eventmart.serviceURLs" . | quote }}
- name: EVENTMART_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: EVENTMART_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "eventmart.secretName" . }}
      key: jwt-secret
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* The pod spec parts every Eventmart pod shares. */}}
{{- define "eventmart.podCommon" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  # EVENTMART_DATA: only the gateway writes there (its built-in schema
  # registry); the root filesystem is read-only.
  - name: data
    emptyDir: {}
  - name: tmp
    emptyDir: {}
{{- end -}}

{{/*
The container's health checks: /healthz answers once the process serves
(liveness), /readyz once its databases and Kafka answer (readiness).
The start-up probe leaves time for the migrations.
*/}}
{{- define "eventmart.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 2
  failureThreshold: 90
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
{{- if semverCompare ">=1.30-0" .Capabilities.KubeVersion.Version }}
# Keep serving while the Services drop the pod from their endpoints
# (serve stops accepting connections on SIGTERM); the image has no shell,
# hence the kubelet's own sleep.
lifecycle:
  preStop:
    sleep: {seconds: 5}
{{- end }}
{{- end -}}
