{{/*
Names and labels shared by every Checkout Platform chart.

Every object of a service chart is named "<release>-<chart>" (plus a suffix), whatever the release
name is: the other services compute this chart's address from the release name alone (see
checkout-lib.serviceUrl), so the usual "drop the chart name when the release name contains it"
shortcut is deliberately not applied.
*/}}

{{- define "checkout-lib.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* What this chart deploys (auth, product, cart, order or storefront), as the processes name themselves. */}}
{{- define "checkout-lib.serviceName" -}}
{{- .Chart.Name }}
{{- end }}

{{- define "checkout-lib.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "checkout-lib.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "checkout-lib.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels. Call with (dict "ctx" $ "component" "api").
Selector labels are the stable subset: name, instance, component.
*/}}
{{- define "checkout-lib.selectorLabels" -}}
app.kubernetes.io/name: {{ include "checkout-lib.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "checkout-lib.labels" -}}
{{ include "checkout-lib.selectorLabels" . }}
app.kubernetes.io/part-of: checkout-platform
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- with .ctx.Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
helm.sh/chart: {{ include "checkout-lib.chart" .ctx }}
{{- end }}

{{- define "checkout-lib.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "checkout-lib.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from a map {repository, tag, digest}: the digest wins, then the tag, then the
chart's appVersion. Call with (dict "image" .Values.image "ctx" $).
*/}}
{{- define "checkout-lib.image" -}}
{{- $tag := .image.tag | default .ctx.Chart.AppVersion | toString }}
{{- if .image.digest }}
{{- printf "%s@%s" .image.repository .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* A value from .Values.global, or "" when global or the key is missing. (dict "ctx" $ "path" (list "a" "b")) */}}
{{- define "checkout-lib.global" -}}
{{- $node := .ctx.Values.global | default dict }}
{{- range .path }}
{{- if kindIs "map" $node }}
{{- $node = index $node . }}
{{- else }}
{{- $node = "" }}
{{- end }}
{{- end }}
{{- if kindIs "map" $node }}{{- else }}{{- $node | default "" }}{{- end }}
{{- end }}

{{- define "checkout-lib.clusterDomain" -}}
{{- include "checkout-lib.global" (dict "ctx" . "path" (list "clusterDomain")) | default "cluster.local" }}
{{- end }}

{{/*
Base URL of one of the four services. Precedence: this chart's serviceUrls.<svc>, then
global.serviceUrls.<svc>, then the in-cluster DNS name of "<release>-<svc>" on port 80.
Call with (dict "ctx" $ "service" "product").
*/}}
{{- define "checkout-lib.serviceUrl" -}}
{{- $explicit := index (.ctx.Values.serviceUrls | default dict) .service | default "" }}
{{- $global := include "checkout-lib.global" (dict "ctx" .ctx "path" (list "serviceUrls" .service)) }}
{{- $default := printf "http://%s-%s.%s.svc.%s:80" .ctx.Release.Name .service .ctx.Release.Namespace (include "checkout-lib.clusterDomain" .ctx) }}
{{- coalesce $explicit $global $default }}
{{- end }}
