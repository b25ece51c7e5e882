# Networking account: the hub VPC (public/private/isolated over 2-3 AZs, a NAT gateway per AZ,
# flow logs, S3/DynamoDB gateway endpoints), the transit gateway shared with the member accounts,
# the shared interface endpoints, and the Lattice service network shared with the member accounts.

locals {
  name = "outrigger-${var.environment}"
  tags = merge(var.tags, {
    Project     = "outrigger"
    Environment = var.environment
    AccountRole = "networking"
    ManagedBy   = "terraform"
  })
}

module "settings" {
  source = "../../modules/env-settings"

  environment = var.environment
}

data "aws_availability_zones" "available" {
  provider = aws.networking

  state = "available"
}

module "hub" {
  source = "../../modules/vpc"
  providers = {
    aws = aws.networking
  }

  name                    = "${local.name}-hub"
  cidr_block              = var.hub_cidr_block
  availability_zones      = slice(data.aws_availability_zones.available.names, 0, module.settings.az_count)
  public_subnets          = true
  flow_log_retention_days = module.settings.log_retention_days
  tags                    = local.tags
}

module "transit_gateway" {
  source = "../../modules/transit-gateway"
  providers = {
    aws = aws.networking
  }

  name             = local.name
  share_principals = var.member_account_ids
  hub_vpc_id       = module.hub.vpc_id
  hub_subnet_ids   = module.hub.private_subnet_ids
  hub_route_table_ids = merge(
    module.hub.private_route_table_ids,
    { public = module.hub.public_route_table_id },
  )
  spoke_supernet = var.spoke_supernet
  tags           = local.tags
}

module "shared_endpoints" {
  source = "../../modules/shared-endpoints"
  providers = {
    aws = aws.networking
  }

  name                = "${local.name}-hub"
  vpc_id              = module.hub.vpc_id
  subnet_ids          = module.hub.private_subnet_ids
  allowed_cidr_blocks = [var.hub_cidr_block, var.spoke_supernet]
  tags                = local.tags
}

module "service_network" {
  source = "../../modules/lattice-service-network"
  providers = {
    aws = aws.networking
  }

  name             = local.name
  organization_id  = var.organization_id
  share_principals = var.member_account_ids
  tags             = local.tags
}
