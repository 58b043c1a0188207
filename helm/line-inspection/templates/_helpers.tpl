{{/* Chart name, overridable. */}}
{{- define "line-inspection.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name; truncated to 63 chars because some Kubernetes name fields are limited to that. */}}
{{- define "line-inspection.fullname" -}}
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

{{- define "line-inspection.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels. */}}
{{- define "line-inspection.labels" -}}
helm.sh/chart: {{ include "line-inspection.chart" . }}
{{ include "line-inspection.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: line-inspection
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels (stable across upgrades; never add changing values here). */}}
{{- define "line-inspection.selectorLabels" -}}
app.kubernetes.io/name: {{ include "line-inspection.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "line-inspection.workerSelectorLabels" -}}
{{ include "line-inspection.selectorLabels" . }}
app.kubernetes.io/component: worker
{{- end }}

{{- define "line-inspection.simulatorSelectorLabels" -}}
{{ include "line-inspection.selectorLabels" . }}
app.kubernetes.io/component: simulator
{{- end }}

{{- define "line-inspection.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "line-inspection.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference from an image block {registry, repository, tag, digest}: [registry/]repository[:tag][@digest].
global.imageRegistry (set by an umbrella chart or --set) replaces every image's own registry.
Call with (dict "image" <block> "root" $ "defaultTag" <tag used when image.tag is empty>).
*/}}
{{- define "line-inspection.image" -}}
{{- $img := .image -}}
{{- $registry := (.root.Values.global).imageRegistry | default $img.registry -}}
{{- $ref := $img.repository -}}
{{- with $registry }}{{ $ref = printf "%s/%s" (trimSuffix "/" .) $ref }}{{ end -}}
{{- with ($img.tag | default .defaultTag) }}{{ $ref = printf "%s:%s" $ref (toString .) }}{{ end -}}
{{- with $img.digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end -}}
{{- $ref -}}
{{- end }}

{{/* Worker image: the tag defaults to <appVersion>-gpu or -cpu, following worker.gpu.enabled. */}}
{{- define "line-inspection.workerImage" -}}
{{- $variant := ternary "gpu" "cpu" .Values.worker.gpu.enabled -}}
{{- include "line-inspection.image" (dict "image" .Values.worker.image "root" . "defaultTag" (printf "%s-%s" .Chart.AppVersion $variant)) -}}
{{- end }}

{{/* A default install cannot run (the default worker images hold no model): refuse it with what to set. */}}
{{- define "line-inspection.checkModel" -}}
{{- $m := .Values.model }}{{- $img := .Values.worker.image }}
{{- if not $m.source }}
{{- fail "model.source is not set, so the worker would have no model. Set model.source=url with model.url.location, s3 with model.s3.uri, pvc with model.pvc.claimName, or image with worker.image.tag (or digest) of a worker image built with a model (deploy/docker/worker.Dockerfile --build-arg MODEL_DIR=...)" }}
{{- end }}
{{- if and (eq $m.source "image") (not $img.tag) (not $img.digest) }}
{{- fail "model.source=image needs worker.image.tag (or worker.image.digest) of a worker image built with a model (--build-arg MODEL_DIR=...): the default tags <appVersion>-gpu/-cpu hold no model" }}
{{- end }}
{{- if and (eq $m.source "url") (not $m.url.location) }}{{ fail "model.source=url needs model.url.location (https URL of a .tar.gz of version folders)" }}{{ end }}
{{- if and (eq $m.source "s3") (not $m.s3.uri) }}{{ fail "model.source=s3 needs model.s3.uri (s3://bucket/prefix/)" }}{{ end }}
{{- if and (eq $m.source "pvc") (not $m.pvc.claimName) }}{{ fail "model.source=pvc needs model.pvc.claimName" }}{{ end }}
{{- end }}

{{/* The job label the rules and dashboards select: prometheusRule.job, else the ServiceMonitor's default (the Service name). */}}
{{- define "line-inspection.metricsJob" -}}
{{- .Values.prometheusRule.job | default (printf "%s-worker" (include "line-inspection.fullname" .)) }}
{{- end }}

{{/* Secret holding Kafka credentials: the user's existing one, or the chart's own. */}}
{{- define "line-inspection.kafkaSecretName" -}}
{{- .Values.kafka.existingSecret | default (printf "%s-kafka" (include "line-inspection.fullname" .)) }}
{{- end }}

{{/* "true" when the chart creates the credentials Secret itself. */}}
{{- define "line-inspection.kafkaChartSecret" -}}
{{- $k := .Values.kafka -}}
{{- if and (not $k.existingSecret) (or $k.sasl.username $k.sasl.password $k.tls.ca $k.tls.cert $k.tls.key $k.tls.keyPassword) -}}
true
{{- end }}
{{- end }}

{{/* "true" when a CA file is mounted from the credentials Secret. */}}
{{- define "line-inspection.kafkaCaMounted" -}}
{{- $k := .Values.kafka -}}
{{- if and (hasSuffix "SSL" $k.securityProtocol) (ternary $k.tls.caFromSecret $k.tls.ca (not (empty $k.existingSecret))) -}}
true
{{- end }}
{{- end }}

{{/* "true" when a client certificate + key are mounted (mutual TLS). */}}
{{- define "line-inspection.kafkaCertMounted" -}}
{{- if and (hasSuffix "SSL" .Values.kafka.securityProtocol) .Values.kafka.tls.clientCert -}}
true
{{- end }}
{{- end }}

{{/* "true" when the client key password comes from the credentials Secret. */}}
{{- define "line-inspection.kafkaKeyPassword" -}}
{{- $k := .Values.kafka -}}
{{- if and (hasSuffix "SSL" $k.securityProtocol) (ternary $k.tls.keyPasswordInSecret $k.tls.keyPassword (not (empty $k.existingSecret))) -}}
true
{{- end }}
{{- end }}

{{- define "line-inspection.kafkaTlsDir" -}}
/etc/line-inspection/kafka-tls
{{- end }}

{{/* Volume with the TLS files of the credentials Secret (only the TLS keys, not the passwords). */}}
{{- define "line-inspection.kafkaTlsVolume" -}}
{{- $k := .Values.kafka -}}
{{- if or (include "line-inspection.kafkaCaMounted" .) (include "line-inspection.kafkaCertMounted" .) }}
- name: kafka-tls
  secret:
    secretName: {{ include "line-inspection.kafkaSecretName" . }}
    defaultMode: 0440
    items:
      {{- if include "line-inspection.kafkaCaMounted" . }}
      - {key: {{ $k.keys.ca | quote }}, path: {{ $k.keys.ca | quote }}}
      {{- end }}
      {{- if include "line-inspection.kafkaCertMounted" . }}
      - {key: {{ $k.keys.cert | quote }}, path: {{ $k.keys.cert | quote }}}
      - {key: {{ $k.keys.key | quote }}, path: {{ $k.keys.key | quote }}}
      {{- end }}
{{- end }}
{{- end }}

{{- define "line-inspection.kafkaTlsMount" -}}
{{- if or (include "line-inspection.kafkaCaMounted" .) (include "line-inspection.kafkaCertMounted" .) }}
- name: kafka-tls
  mountPath: {{ include "line-inspection.kafkaTlsDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
Kafka connection env for one deployable (prefix WORKER_ or SIM_), as ConfigMap data.
Keys are exactly the KafkaClientSettings fields (line_contracts/settings.py) with the prefix.
*/}}
{{- define "line-inspection.kafkaConfig" -}}
{{- $p := .prefix }}{{- $k := .root.Values.kafka }}{{- $dir := include "line-inspection.kafkaTlsDir" .root }}
{{ $p }}KAFKA_BOOTSTRAP_SERVERS: {{ required "kafka.bootstrapServers is required (host:port[,host:port])" $k.bootstrapServers | quote }}
{{ $p }}KAFKA_SECURITY_PROTOCOL: {{ $k.securityProtocol | quote }}
{{ $p }}KAFKA_CONNECT_TIMEOUT_S: {{ $k.connectTimeoutSeconds | quote }}
{{- if hasPrefix "SASL" $k.securityProtocol }}
{{ $p }}KAFKA_SASL_MECHANISM: {{ required "kafka.sasl.mechanism is required with a SASL_* securityProtocol" $k.sasl.mechanism | quote }}
{{- end }}
{{- if hasSuffix "SSL" $k.securityProtocol }}
{{ $p }}KAFKA_SSL_CHECK_HOSTNAME: {{ $k.tls.checkHostname | quote }}
{{- end }}
{{- if include "line-inspection.kafkaCaMounted" .root }}
{{ $p }}KAFKA_SSL_CAFILE: {{ printf "%s/%s" $dir $k.keys.ca | quote }}
{{- end }}
{{- if include "line-inspection.kafkaCertMounted" .root }}
{{ $p }}KAFKA_SSL_CERTFILE: {{ printf "%s/%s" $dir $k.keys.cert | quote }}
{{ $p }}KAFKA_SSL_KEYFILE: {{ printf "%s/%s" $dir $k.keys.key | quote }}
{{- end }}
{{- end }}

{{/* Kafka secrets as env vars read from the credentials Secret (never from the ConfigMap); secretName overrides it. */}}
{{- define "line-inspection.kafkaSecretEnv" -}}
{{- $p := .prefix }}{{- $k := .root.Values.kafka }}{{- $secret := .secretName | default (include "line-inspection.kafkaSecretName" .root) }}
{{- if hasPrefix "SASL" $k.securityProtocol }}
{{- if not $k.existingSecret }}
{{- $_ := required "kafka.sasl.username is required with a SASL_* securityProtocol (or set kafka.existingSecret)" $k.sasl.username }}
{{- $_ := required "kafka.sasl.password is required with a SASL_* securityProtocol (or set kafka.existingSecret)" $k.sasl.password }}
{{- end }}
- name: {{ $p }}KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $k.keys.saslUsername }}}
- name: {{ $p }}KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $k.keys.saslPassword }}}
{{- end }}
{{- if include "line-inspection.kafkaKeyPassword" .root }}
- name: {{ $p }}KAFKA_SSL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $k.keys.keyPassword }}}
{{- end }}
{{- end }}

{{/* Settings map -> ConfigMap data with the deployable's prefix; null values are left to the code default. */}}
{{- define "line-inspection.settingsConfig" -}}
{{- $p := .prefix }}
{{- range $key, $value := .settings }}
{{- if not (kindIs "invalid" $value) }}
{{- /* YAML numbers arrive as float64; print whole numbers without an exponent (16777216, not 1.6777216e+07). */}}
{{- $text := ternary (int64 $value | toString) (toString $value) (and (kindIs "float64" $value) (eq $value (float64 (int64 $value)))) }}
{{ printf "%s%s" $p (upper $key) }}: {{ $text | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Refuse worker counts above the frames topic's partitions: extra consumers would sit idle, never ready.
     Each pod runs worker.settings.processes consumers (worker/fleet.py), so pods x processes is what counts. */}}
{{- define "line-inspection.checkPartitions" -}}
{{- $partitions := int .Values.kafka.framesPartitions }}
{{- $procs := int (default 1 .Values.worker.settings.processes) }}
{{- if gt (mul (int .Values.worker.replicaCount) $procs) $partitions }}
{{- fail (printf "worker.replicaCount (%d) x worker.settings.processes (%d) consumers is above kafka.framesPartitions (%d): extra workers get no partition and never become ready; lower replicaCount or processes, or add partitions" (int .Values.worker.replicaCount) $procs $partitions) }}
{{- end }}
{{- if and .Values.autoscaling.keda.enabled (gt (mul (int .Values.autoscaling.keda.maxReplicaCount) $procs) $partitions) }}
{{- fail (printf "autoscaling.keda.maxReplicaCount (%d) x worker.settings.processes (%d) consumers is above kafka.framesPartitions (%d): KEDA would add workers that get no partition; lower it or add partitions" (int .Values.autoscaling.keda.maxReplicaCount) $procs $partitions) }}
{{- end }}
{{- if and .Values.autoscaling.hpa.enabled (gt (mul (int .Values.autoscaling.hpa.maxReplicas) $procs) $partitions) }}
{{- fail (printf "autoscaling.hpa.maxReplicas (%d) x worker.settings.processes (%d) consumers is above kafka.framesPartitions (%d): the HPA would add workers that get no partition; lower it or add partitions" (int .Values.autoscaling.hpa.maxReplicas) $procs $partitions) }}
{{- end }}
{{- $keda := .Values.autoscaling.keda }}
{{- if and $keda.enabled (gt (int $keda.fallback.replicas) (min (int $keda.maxReplicaCount) $partitions)) }}
{{- fail (printf "autoscaling.keda.fallback.replicas (%d) is above autoscaling.keda.maxReplicaCount or kafka.framesPartitions (%d): lower it" (int $keda.fallback.replicas) (min (int $keda.maxReplicaCount) $partitions)) }}
{{- end }}
{{- if and $keda.enabled (gt (int $keda.minReplicaCount) (int $keda.maxReplicaCount)) }}
{{- fail (printf "autoscaling.keda.minReplicaCount (%d) is above maxReplicaCount (%d)" (int $keda.minReplicaCount) (int $keda.maxReplicaCount)) }}
{{- end }}
{{- if and .Values.autoscaling.hpa.enabled (gt (int .Values.autoscaling.hpa.minReplicas) (int .Values.autoscaling.hpa.maxReplicas)) }}
{{- fail (printf "autoscaling.hpa.minReplicas (%d) is above maxReplicas (%d)" (int .Values.autoscaling.hpa.minReplicas) (int .Values.autoscaling.hpa.maxReplicas)) }}
{{- end }}
{{- if and .Values.autoscaling.keda.enabled .Values.autoscaling.hpa.enabled }}
{{- fail "enable at most one of autoscaling.keda and autoscaling.hpa (KEDA creates its own HPA)" }}
{{- end }}
{{- end }}

{{/* Data of the chart-made credentials Secret (templates/secret.yaml; the topics hook's copy, templates/topics-job.yaml). */}}
{{- define "line-inspection.kafkaSecretData" -}}
{{- $k := .Values.kafka }}
{{- with $k.sasl.username }}
{{ $k.keys.saslUsername }}: {{ . | b64enc | quote }}
{{- end }}
{{- with $k.sasl.password }}
{{ $k.keys.saslPassword }}: {{ . | b64enc | quote }}
{{- end }}
{{- with $k.tls.ca }}
{{ $k.keys.ca }}: {{ . | b64enc | quote }}
{{- end }}
{{- with $k.tls.cert }}
{{ $k.keys.cert }}: {{ . | b64enc | quote }}
{{- end }}
{{- with $k.tls.key }}
{{ $k.keys.key }}: {{ . | b64enc | quote }}
{{- end }}
{{- with $k.tls.keyPassword }}
{{ $k.keys.keyPassword }}: {{ . | b64enc | quote }}
{{- end }}
{{- end }}

{{/* NetworkPolicy egress rules every Kafka client needs: DNS and the brokers (ports, optional peers). */}}
{{- define "line-inspection.egressDnsKafka" -}}
# DNS, in any namespace (kube-dns / CoreDNS).
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
# Kafka brokers.
- ports:
    {{- range .ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
  {{- with .peers }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
