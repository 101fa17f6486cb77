{{/* The umbrella's own objects carry the platform labels, with the release as the instance. */}}
{{- define "checkout.labels" -}}
{{ include "checkout-lib.labels" . }}
{{- end }}

{{/*
Routes of the single Ingress: every service's public ingress.paths (from its own chart's values,
so the list lives in one place) to that service's Service.
*/}}
{{- define "checkout.routes" -}}
{{- $routes := list }}
{{- range $service := list "auth" "product" "cart" "order" }}
{{- $values := index $.Values $service }}
{{- $name := $values.fullnameOverride | default (printf "%s-%s" $.Release.Name $service) }}
{{- range $values.ingress.paths }}
{{- $routes = append $routes (dict "path" . "service" $name) }}
{{- end }}
{{- end }}
{{- toJson $routes }}
{{- end }}
