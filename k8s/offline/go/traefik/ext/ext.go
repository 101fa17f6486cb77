// Package ext stands in for Traefik's dynamic-configuration extension module. Upstream's go.mod
// points it at a folder (./pkg/config/dynamic/ext) that is a module of its own and so is not in
// the traefik/v3 module the proxy serves. Open-source Traefik extends nothing through it: these
// are the empty types its dynamic configuration embeds.
package ext

// HTTP is embedded in Traefik's dynamic.HTTP.
type HTTP struct{}

// Router is embedded in Traefik's dynamic.Router.
type Router struct{}
