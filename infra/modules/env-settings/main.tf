# Per-environment sizing in one place, so that every root reads the same numbers.
# No resources: roots call this module and read its outputs.

locals {
  settings = {
    dev = {
      az_count           = 2
      task_cpu           = 1024
      task_memory        = 2048
      desired_count      = 1
      log_retention_days = 14
      nlb_cross_zone     = false
    }
    staging = {
      az_count           = 2
      task_cpu           = 2048
      task_memory        = 4096
      desired_count      = 2
      log_retention_days = 30
      nlb_cross_zone     = true
    }
    prod = {
      az_count           = 3
      task_cpu           = 4096
      task_memory        = 8192
      desired_count      = 3
      log_retention_days = 365
      nlb_cross_zone     = true
    }
  }

  # Task sizes are valid Fargate CPU/memory pairs. The outrigger sidecar's share is the same in
  # every environment (it is small, and its worker count follows its own CPU quota); the app
  # gets the rest.
  sidecar = {
    cpu    = 256
    memory = 512
  }

  selected = local.settings[var.environment]
}
