# Consumer account: the service's spoke VPC, interface endpoints to the provider endpoint services,
# friendly names in a private hosted zone, the VPC associated with the shared Lattice service
# network, and the service (app + outrigger sidecar) whose outbound clusters are rendered from
# those resources' outputs.

locals {
  name = "outrigger-${var.environment}-${var.service_name}"
  tags = merge(var.tags, {
    Project     = "outrigger"
    Environment = var.environment
    AccountRole = "consumer"
    Service     = var.service_name
    ManagedBy   = "terraform"
  })

  execute_api = var.enable_execute_api_endpoint || var.serverless_upstream != null

  outrigger_config = templatefile("${path.module}/templates/outrigger.yaml.tftpl", {
    environment      = var.environment
    service_name     = var.service_name
    account_id       = var.account_id
    region           = var.region
    issuing_ca_arn   = var.issuing_ca_arn
    trust_bundle_pem = var.trust_bundle_pem
    privatelink      = module.connectivity.privatelink_hosts
    lattice          = module.connectivity.lattice_hosts
    serverless       = var.serverless_upstream
  })
}

check "upstream_names_unique" {
  assert {
    condition     = length(setintersection(keys(var.privatelink_upstreams), keys(var.lattice_upstreams))) == 0
    error_message = "A name is either a PrivateLink or a Lattice upstream, not both."
  }
}

module "settings" {
  source = "../../modules/env-settings"

  environment = var.environment
}

data "aws_availability_zones" "available" {
  provider = aws.consumer

  state = "available"
}

module "network" {
  source = "../../modules/spoke-network"
  providers = {
    aws         = aws.consumer
    aws.network = aws.networking
  }

  name                           = local.name
  cidr_block                     = var.vpc_cidr_block
  availability_zones             = slice(data.aws_availability_zones.available.names, 0, module.settings.az_count)
  flow_log_retention_days        = module.settings.log_retention_days
  transit_gateway_id             = var.transit_gateway_id
  transit_gateway_route_table_id = var.transit_gateway_route_table_id
  shared_endpoint_zone_ids       = var.shared_endpoint_zone_ids
  tags                           = local.tags
}

module "cluster" {
  source = "../../modules/ecs-cluster"
  providers = {
    aws = aws.consumer
  }

  name = local.name
  tags = local.tags
}

module "connectivity" {
  source = "../../modules/consumer-connectivity"
  providers = {
    aws = aws.consumer
  }

  name                        = local.name
  vpc_id                      = module.network.vpc_id
  vpc_cidr_block              = module.network.vpc_cidr_block
  subnet_ids                  = module.network.private_subnet_ids
  private_zone_name           = var.internal_domain
  service_network_arn         = var.service_network_arn
  enable_execute_api_endpoint = local.execute_api
  tags                        = local.tags

  privatelink_services = {
    for name, u in var.privatelink_upstreams : name => {
      endpoint_service_name = u.endpoint_service_name
      port                  = u.port
    }
  }
  lattice_services = var.lattice_upstreams
}

module "service" {
  source = "../../modules/sidecar-service"
  providers = {
    aws = aws.consumer
  }

  name                    = local.name
  cluster_arn             = module.cluster.cluster_arn
  vpc_id                  = module.network.vpc_id
  subnet_ids              = module.network.private_subnet_ids
  task_cpu                = module.settings.task_cpu
  task_memory             = module.settings.task_memory
  sidecar_cpu             = module.settings.sidecar_cpu
  sidecar_memory          = module.settings.sidecar_memory
  desired_count           = module.settings.desired_count
  app_image               = var.app_image
  outrigger_image         = var.outrigger_image
  outrigger_config_yaml   = local.outrigger_config
  issuing_ca_arn          = var.issuing_ca_arn
  lattice_invoke_arns     = [for u in values(var.lattice_upstreams) : u.service_arn]
  execute_api_invoke_arns = var.serverless_upstream == null ? [] : ["${var.serverless_upstream.execution_arn}/*"]
  log_retention_days      = module.settings.log_retention_days
  tags                    = local.tags
}
