{{/* The seven services: name, short name (port names), REST and gRPC ports (internal/fabric). */}}
{{- define "decision-fabric.serviceTable" -}}
- {name: decision-coordinator, short: coord, http: 9201, grpc: 9301}
- {name: proposal-composer, short: compose, http: 9202, grpc: 9302}
- {name: federated-negotiator, short: negot, http: 9203, grpc: 9303}
- {name: confidence-scorer, short: scorer, http: 9204, grpc: 9304}
- {name: hil-gateway, short: hil, http: 9205, grpc: 9305}
- {name: decision-auditor, short: auditor, http: 9206, grpc: 9306}
- {name: sim-canary, short: canary, http: 9207, grpc: 9307}
{{- end -}}

{{- define "decision-fabric.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "decision-fabric.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "decision-fabric.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "decision-fabric.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: decision-fabric
{{- end -}}

{{/* Labels every pod of the release carries (NetworkPolicy peers). */}}
{{- define "decision-fabric.releaseSelector" -}}
app.kubernetes.io/name: {{ include "decision-fabric.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
The workloads (Deployments) this release runs, as YAML {items: [...]}: each with its
resource name, component, target, service binary, ports, whether it coordinates the
regions, its region (if a region negotiator) and its settings (defaults merged with the
per-workload overrides).
*/}}
{{- define "decision-fabric.workloads" -}}
{{- $root := . -}}
{{- $full := include "decision-fabric.fullname" . -}}
{{- $table := include "decision-fabric.serviceTable" . | fromYamlArray -}}
{{- $items := list -}}
{{- if eq .Values.mode "all-in-one" -}}
  {{- $ports := list -}}
  {{- range $table -}}
    {{- $httpName := ternary "http" (printf "http-%s" .short) (eq .name "decision-coordinator") -}}
    {{- $ports = append $ports (dict "name" $httpName "port" .http "kind" "http") -}}
    {{- $ports = append $ports (dict "name" (printf "grpc-%s" .short) "port" .grpc "kind" "grpc") -}}
  {{- end -}}
  {{- $s := mustMergeOverwrite (deepCopy $root.Values.defaults) (deepCopy (default dict $root.Values.allInOne)) -}}
  {{- $items = append $items (dict "name" $full "component" "all" "target" "all" "image" $root.Values.allInOne.image "ports" $ports "healthPort" 9201 "coordinates" $root.Values.regions.enabled "hil" true "settings" $s) -}}
{{- else if eq .Values.mode "split" -}}
  {{- range $table -}}
    {{- $ports := list (dict "name" "http" "port" .http "kind" "http") (dict "name" "grpc" "port" .grpc "kind" "grpc") -}}
    {{- $over := default dict (get (default dict $root.Values.services) .name) -}}
    {{- $s := mustMergeOverwrite (deepCopy $root.Values.defaults) (deepCopy $over) -}}
    {{- $coord := and $root.Values.regions.enabled (eq .name "federated-negotiator") -}}
    {{- $items = append $items (dict "name" (printf "%s-%s" $full .name) "component" .name "target" .name "image" .name "ports" $ports "healthPort" .http "coordinates" $coord "hil" (eq .name "hil-gateway") "settings" $s) -}}
  {{- end -}}
{{- else -}}
  {{- fail (printf "mode %q: want all-in-one or split" .Values.mode) -}}
{{- end -}}
{{- if .Values.regions.enabled -}}
  {{- if not .Values.regions.list -}}{{- fail "regions.enabled: list at least one region in regions.list" -}}{{- end -}}
  {{- range .Values.regions.list -}}
    {{- if not (regexMatch "^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$" (toString .name)) -}}{{- fail (printf "regions.list: name %q: want a lower-case DNS label of at most 22 characters" (toString .name)) -}}{{- end -}}
    {{- if not .keySecret -}}{{- fail (printf "regions.list %s: keySecret is required (the Secret holding the region's private key)" .name) -}}{{- end -}}
    {{- if not .publicKey -}}{{- fail (printf "regions.list %s: publicKey is required (its PEM public key, for the registry)" .name) -}}{{- end -}}
    {{- $ports := list (dict "name" "http" "port" 9203 "kind" "http") (dict "name" "grpc" "port" 9303 "kind" "grpc") (dict "name" "region" "port" $root.Values.regions.grpcPort "kind" "region") -}}
    {{- $over := omit . "name" "publicKey" "keySecret" "weight" "config" "postgres" -}}
    {{- $s := mustMergeOverwrite (deepCopy $root.Values.defaults) (deepCopy $over) -}}
    {{- $items = append $items (dict "name" (printf "%s-region-%s" $full .name) "component" (printf "region-%s" .name) "target" "federated-negotiator" "image" "federated-negotiator" "ports" $ports "healthPort" 9203 "coordinates" false "hil" false "region" . "settings" $s) -}}
  {{- end -}}
{{- end -}}
{{- toYaml (dict "items" $items) -}}
{{- end -}}

{{- define "decision-fabric.selectorLabels" -}}
{{ include "decision-fabric.releaseSelector" .root }}
app.kubernetes.io/component: {{ .w.component }}
{{- end -}}

{{- define "decision-fabric.image" -}}
{{- printf "%s/%s:%s" .root.Values.image.repository .w.image (default .root.Chart.AppVersion .root.Values.image.tag) -}}
{{- end -}}

{{/*
The fabric configuration (internal/config) of one workload, as YAML: the chart's
settings over .Values.config (and a region's config under federation.region).
*/}}
{{- define "decision-fabric.config" -}}
{{- $root := .root -}}
{{- $w := .w -}}
{{- $sec := $root.Values.secrets -}}
{{- $full := include "decision-fabric.fullname" $root -}}
{{- $c := dict "target" $w.target "data_dir" "/var/lib/fabric/data" "reports_dir" "/var/lib/fabric/reports" -}}
{{- if ne $w.target "all" -}}
  {{- $services := dict -}}
  {{- range (include "decision-fabric.serviceTable" $root | fromYamlArray) -}}
    {{- if eq .name $w.target -}}
      {{- $_ := set $services .name (dict "http_addr" (printf ":%v" .http) "grpc_addr" (printf ":%v" .grpc)) -}}
    {{- else if eq $root.Values.mode "split" -}}
      {{- $_ := set $services .name (dict "dial" (printf "%s-%s:%v" $full .name .grpc)) -}}
    {{- else -}}
      {{- $_ := set $services .name (dict "dial" (printf "%s:%v" $full .grpc)) -}}
    {{- end -}}
  {{- end -}}
  {{- $_ := set $c "services" $services -}}
{{- end -}}
{{- $auth := dict -}}
{{- if $sec.serviceKey.existingSecret -}}{{- $_ := set $auth "service_key_file" (printf "/etc/fabric/secrets/service/%s" $sec.serviceKey.key) -}}{{- end -}}
{{- if $sec.jwtPublicKey.existingSecret -}}{{- $_ := set $auth "public_key_file" (printf "/etc/fabric/secrets/jwt/%s" $sec.jwtPublicKey.key) -}}{{- end -}}
{{- if $auth -}}{{- $_ := set $c "auth" $auth -}}{{- end -}}
{{- if $sec.signingKey.existingSecret -}}
  {{- $_ := set $c "integrations" (dict "cosign_key_path" (printf "/etc/fabric/secrets/signing/%s" $sec.signingKey.key)) -}}
{{- end -}}
{{- if $w.hil -}}
  {{- $hil := dict -}}
  {{- if $sec.smtp.existingSecret -}}{{- $_ := set $hil "smtp" (dict "password_env" "SMTP_PASSWORD") -}}{{- end -}}
  {{- if $sec.slack.existingSecret -}}{{- $_ := set $hil "slack" (dict "token_env" "SLACK_BOT_TOKEN" "signing_secret_env" "SLACK_SIGNING_SECRET") -}}{{- end -}}
  {{- if $sec.telegram.existingSecret -}}{{- $_ := set $hil "telegram" (dict "token_env" "TELEGRAM_BOT_TOKEN" "webhook_secret_env" "TELEGRAM_WEBHOOK_SECRET") -}}{{- end -}}
  {{- if $hil -}}{{- $_ := set $c "hil" $hil -}}{{- end -}}
{{- end -}}
{{- $ftls := dict -}}
{{- if $root.Values.regions.tls.existingSecret -}}
  {{- $dir := "/etc/fabric/secrets/federation-tls" -}}
  {{- $t := $root.Values.regions.tls -}}
  {{- $ftls = dict "cert_file" (printf "%s/%s" $dir $t.certKey) "key_file" (printf "%s/%s" $dir $t.keyKey) "ca_file" (printf "%s/%s" $dir $t.caKey) -}}
{{- end -}}
{{- if $w.coordinates -}}
  {{- $f := dict "enabled" true "registry_file" "/etc/fabric/registry/registry.json" -}}
  {{- if $ftls -}}{{- $_ := set $f "tls" $ftls -}}{{- end -}}
  {{- $_ := set $c "federation" $f -}}
{{- end -}}
{{- if $w.region -}}
  {{- $r := mustMergeOverwrite (deepCopy (default dict $w.region.config)) (dict "name" $w.region.name "key_file" (printf "/etc/fabric/secrets/region/%s" $root.Values.regions.keySecretKey) "grpc_addr" (printf ":%v" $root.Values.regions.grpcPort)) -}}
  {{- $f := dict "region" $r -}}
  {{- if $ftls -}}{{- $_ := set $f "tls" $ftls -}}{{- end -}}
  {{- $_ := set $c "federation" $f -}}
{{- end -}}
{{- $user := deepCopy (default dict $root.Values.config) -}}
{{- if $w.region -}}{{- $_ := unset $user "hil" -}}{{- end -}}
{{- toYaml (mustMergeOverwrite $user $c) -}}
{{- end -}}

{{/* The registry of the region negotiators (internal/federation), as JSON. */}}
{{- define "decision-fabric.registry" -}}
{{- $root := . -}}
{{- $full := include "decision-fabric.fullname" . -}}
{{- $regions := list -}}
{{- range .Values.regions.list -}}
  {{- $r := dict "name" .name "endpoint" (printf "%s-region-%s:%v" $full .name $root.Values.regions.grpcPort) "public_key" .publicKey -}}
  {{- if .weight -}}{{- $_ := set $r "weight" (int .weight) -}}{{- end -}}
  {{- $regions = append $regions $r -}}
{{- end -}}
{{- toJson (dict "regions" $regions) -}}
{{- end -}}
