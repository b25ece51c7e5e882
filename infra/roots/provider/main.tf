# Provider account: the service's spoke VPC, a Fargate cluster, and the service (app + outrigger
# sidecar) published two ways: behind an internal NLB as a PrivateLink endpoint service, and as a
# VPC Lattice service in the shared service network. Optionally, the serverless variant.

locals {
  name = "outrigger-${var.environment}-${var.service_name}"
  tags = merge(var.tags, {
    Project     = "outrigger"
    Environment = var.environment
    AccountRole = "provider"
    Service     = var.service_name
    ManagedBy   = "terraform"
  })

  privatelink_host = "${var.service_name}.pl.${var.internal_domain}"
  lattice_host     = "${var.service_name}.lattice.${var.internal_domain}"

  outrigger_config = templatefile("${path.module}/templates/outrigger.yaml.tftpl", {
    environment          = var.environment
    service_name         = var.service_name
    account_id           = var.account_id
    issuing_ca_arn       = var.issuing_ca_arn
    trust_bundle_pem     = var.trust_bundle_pem
    server_names         = [local.privatelink_host, local.lattice_host]
    consumer_account_ids = var.consumer_account_ids
  })
}

module "settings" {
  source = "../../modules/env-settings"

  environment = var.environment
}

data "aws_availability_zones" "available" {
  provider = aws.service_provider

  state = "available"
}

module "network" {
  source = "../../modules/spoke-network"
  providers = {
    aws         = aws.service_provider
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
    aws = aws.service_provider
  }

  name = local.name
  tags = local.tags
}

module "privatelink" {
  source = "../../modules/privatelink-service"
  providers = {
    aws = aws.service_provider
  }

  name                  = local.name
  vpc_id                = module.network.vpc_id
  vpc_cidr_block        = module.network.vpc_cidr_block
  subnet_ids            = module.network.private_subnet_ids
  cross_zone            = module.settings.nlb_cross_zone
  allowed_principals    = [for a in var.consumer_account_ids : "arn:aws:iam::${a}:root"]
  accepted_endpoint_ids = var.accepted_endpoint_ids
  tags                  = local.tags
}

module "lattice" {
  source = "../../modules/lattice-service"
  providers = {
    aws = aws.service_provider
  }

  name                 = local.name
  custom_domain_name   = local.lattice_host
  issuing_ca_arn       = var.issuing_ca_arn
  vpc_id               = module.network.vpc_id
  service_network_arn  = var.service_network_arn
  consumer_account_ids = var.consumer_account_ids
  organization_id      = var.organization_id
  tags                 = local.tags
}

module "service" {
  source = "../../modules/sidecar-service"
  providers = {
    aws = aws.service_provider
  }

  name                     = local.name
  cluster_arn              = module.cluster.cluster_arn
  vpc_id                   = module.network.vpc_id
  subnet_ids               = module.network.private_subnet_ids
  task_cpu                 = module.settings.task_cpu
  task_memory              = module.settings.task_memory
  sidecar_cpu              = module.settings.sidecar_cpu
  sidecar_memory           = module.settings.sidecar_memory
  desired_count            = module.settings.desired_count
  app_image                = var.app_image
  outrigger_image          = var.outrigger_image
  outrigger_config_yaml    = local.outrigger_config
  issuing_ca_arn           = var.issuing_ca_arn
  inbound_cidr_blocks      = [module.network.vpc_cidr_block]
  nlb_target_group_arns    = [module.privatelink.target_group_arn]
  enable_lattice           = true
  lattice_target_group_arn = module.lattice.target_group_arn
  log_retention_days       = module.settings.log_retention_days
  tags                     = local.tags
}

module "serverless" {
  source   = "../../modules/serverless-api"
  for_each = var.serverless == null ? {} : { api = var.serverless }
  providers = {
    aws = aws.service_provider
  }

  name                 = "${local.name}-api"
  lambda_s3_bucket     = each.value.lambda_s3_bucket
  lambda_s3_key        = each.value.lambda_s3_key
  allowed_vpce_ids     = each.value.allowed_vpce_ids
  consumer_account_ids = var.consumer_account_ids
  log_retention_days   = module.settings.log_retention_days
  tags                 = local.tags
}
