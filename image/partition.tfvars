# A `wasm` partition of ArmoniK's compute plane whose workers are armonik-wasm: merge the `wasm`
# entry into the `compute_plane` map of an ArmoniK deployment's parameters.tfvars (ArmoniK's
# infrastructure/quick-deploy/*/parameters.tfvars; its variables.tf gives the shape and the
# defaults of the keys left out). Clients then send tasks to partition "wasm".
#
# ArmoniK.Infra gives the worker container the ComputePlane__* keys itself (the same socket paths
# as the agent's, for `socket_type`), so they are not repeated here; the image's own defaults
# only matter outside ArmoniK. tests/image.rs parses this file and checks that every
# ArmonikWasm__* key below is one `armonik-wasm serve` reads, and that the numbers fit together.
compute_plane = {
  wasm = {
    replicas    = 1
    socket_type = "unixdomainsocket"
    # Kubernetes' budget for the whole pod stop: the agent's own drain (Pollster__GraceDelay,
    # 15 s in ArmoniK.Infra), the worker's preStop hook, then the worker's drain
    # (ArmonikWasm__ShutdownGraceSeconds below).
    termination_grace_period_seconds = 45
    polling_agent = {
      limits = {
        cpu    = "2000m"
        memory = "2048Mi"
      }
      requests = {
        cpu    = "50m"
        memory = "50Mi"
      }
    }
    worker = [
      {
        name = "worker"
        # image/build tags armonik-wasm:<version>; push it to a registry the cluster pulls from
        # and name that here.
        image             = "armonik-wasm"
        tag               = "0.1.0"
        image_pull_policy = "IfNotPresent"
        limits = {
          cpu    = "2000m"
          memory = "4096Mi"
        }
        requests = {
          cpu    = "500m"
          memory = "256Mi"
        }
        conf = {
          env = {
            # Linear memory of one task. ArmoniK sends one task at a time, but a task being
            # stopped after its deadline may overlap the next one: two tasks (1.5 GiB each) and
            # the host (compiled code, buffers) fit in the 4 GiB limit above.
            ArmonikWasm__MemoryLimitMiB       = "1536"
            ArmonikWasm__MaxConcurrentTasks   = "2"
            ArmonikWasm__CacheDir             = "/var/cache/armonik-wasm"
            ArmonikWasm__CacheMaxMiB          = "512"
            ArmonikWasm__ShutdownGraceSeconds = "15"
          }
        }
      }
    ]
    hpa = {
      type              = "prometheus"
      polling_interval  = 15
      cooldown_period   = 300
      min_replica_count = 0
      max_replica_count = 10
      behavior = {
        restore_to_original_replica_count = true
        stabilization_window_seconds      = 300
        type                              = "Percent"
        value                             = 100
        period_seconds                    = 15
      }
      triggers = [
        {
          type      = "prometheus"
          threshold = 2
        },
      ]
    }
  }
}
