{{/* The umbrella's own objects carry the platform labels, with the release as the instance. */}}
{{- define "checkout.labels" -}}
{{ include "checkout-lib.labels" . }}
{{- end }}

{{/* The charts the umbrella installs: the four services, and the storefront unless disabled. */}}
{{- define "checkout.charts" -}}
{{- $charts := list "auth" "product" "cart" "order" }}
{{- if .Values.storefront.enabled }}
{{- $charts = append $charts "storefront" }}
{{- end }}
{{- toJson $charts }}
{{- end }}

{{/*
Routes of the single Ingress: every installed chart's public ingress.paths (from its own chart's
values, so the list lives in one place) to that chart's Service: the services' API paths, and the
storefront's "/" (Prefix matching takes the longest path, so the API paths stay the services').
*/}}
{{- define "checkout.routes" -}}
{{- $routes := list }}
{{- range $chart := include "checkout.charts" . | fromJsonArray }}
{{- $values := index $.Values $chart }}
{{- $name := $values.fullnameOverride | default (printf "%s-%s" $.Release.Name $chart) }}
{{- range $values.ingress.paths }}
{{- $routes = append $routes (dict "path" . "service" $name) }}
{{- end }}
{{- end }}
{{- toJson $routes }}
{{- end }}
