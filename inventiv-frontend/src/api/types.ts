// Names for the API's types and the values of its enums, all generated from
// /openapi.json (schema.ts, `npm run gen:api`).
import type { components, paths } from './schema';

export { instanceStatusValues, serviceEventKindValues, serviceStateValues, workerStatusValues } from './schema';

type S = components['schemas'];

export type ActionLogEntry = S['ActionLogEntry'];
export type ActionStatus = S['ActionStatus'];
export type Activation = S['Activation'];
export type ApiKey = S['ApiKey'];
export type AuditLog = S['AuditLog'];
export type Budget = S['Budget'];
export type BudgetAlert = S['BudgetAlert'];
export type Available = S['Available'];
export type CostPoint = S['CostPoint'];
export type CreateInvitation = S['CreateInvitation'];
export type CreateKey = S['CreateKey'];
export type CreateModel = S['CreateModel'];
export type CreateOffering = S['CreateOffering'];
export type Dispute = S['Dispute'];
export type DriftStatus = S['DriftStatus'];
export type CreateService = S['CreateService'];
export type CreateShare = S['CreateShare'];
export type CreatedKey = S['CreatedKey'];
export type CredentialsStatus = S['CredentialsStatus'];
export type CurrentCost = S['CurrentCost'];
export type CurrentOrganization = S['CurrentOrganization'];
export type Deploy = S['Deploy'];
export type ErrorBody = S['ErrorBody'];
export type HistoryEntry = S['HistoryEntry'];
export type HuggingFaceToken = S['HuggingFaceTokenBody'];
export type HuggingFaceTokenStatus = S['HuggingFaceTokenStatus'];
export type Instance = S['Instance'];
export type InstanceStatus = S['InstanceStatus'];
export type InstanceLogs = S['InstanceLogs'];
export type InstanceMetrics = S['InstanceMetrics'];
export type LogEvent = S['LogEvent'];
export type LogLevel = S['LogLevel'];
export type Health = S['Health'];
export type InstanceType = S['InstanceType'];
export type Invitation = S['Invitation'];
export type InvitationStatus = S['InvitationStatus'];
export type NewBudget = S['NewBudget'];
export type SetBudget = S['SetBudget'];
export type InvitationPreview = S['InvitationPreview'];
export type KeyStatus = S['KeyStatus'];
export type Me = S['Me'];
export type Member = S['Member'];
export type Membership = S['Membership'];
export type Model = S['Model'];
export type MonthLine = S['MonthLine'];
export type MonthStatement = S['MonthStatement'];
export type NewPrice = S['NewPrice'];
export type Offering = S['Offering'];
export type OfferingPreferences = S['Preferences'];
export type OrgRole = S['OrgRole'];
export type Organization = S['Organization'];
export type PriceVersion = S['PriceVersion'];
export type Provider = S['Provider'];
export type ReconciliationReport = S['Report'];
export type ReconciliationResource = S['Resource'];
export type Recovery = S['Recovery'];
export type Rollout = S['Rollout'];
export type RunningInstance = S['RunningInstance'];
export type RuntimeModel = S['RuntimeModel'];
export type ScalewayCredentials = S['ScalewayCredentialsBody'];
export type Placement = S['Placement'];
export type Service = S['Service'];
export type ServiceDetail = S['ServiceDetail'];
export type ServiceEvent = S['ServiceEvent'];
export type ServiceEventKind = S['ServiceEventKind'];
export type ServiceState = S['ServiceState'];
export type Session = S['Session'];
export type SetSystemPrompt = S['SetSystemPrompt'];
export type SetActivation = S['SetActivation'];
export type Share = S['Share'];
export type ShareStatus = S['ShareStatus'];
export type Statement = S['Statement'];
export type StatementLine = S['StatementLine'];
export type Switched = S['Switched'];
export type SystemPrompt = S['SystemPrompt'];
export type SyncReport = S['SyncReport'];
export type TokenResponse = S['TokenResponse'];
export type UpdateInstanceType = S['UpdateInstanceType'];
export type UpdateKey = S['UpdateKey'];
export type UpdateModel = S['UpdateModel'];
export type UpdateOffering = S['UpdateOffering'];
export type UpdateOrganization = S['UpdateOrganization'];
export type UpdateService = S['UpdateService'];
export type UpdateShare = S['UpdateShare'];
export type UsageLine = S['UsageLine'];
export type UsageReconciliation = S['UsageReconciliation'];
export type UsagePoint = S['UsagePoint'];
export type Verification = S['Verification'];
export type Volume = S['Volume'];
export type VolumeStatus = S['VolumeStatus'];
export type WorkerSettings = S['WorkerSettings'];
export type WorkerStatus = S['WorkerStatus'];
export type Zone = S['Zone'];

export type ApiPath = keyof paths;

/** Whether an untyped value (an SSE event's field) is one of an enum's values. */
export function isOneOf<T extends string>(values: ReadonlyArray<T>, value: unknown): value is T {
  return typeof value === 'string' && (values as ReadonlyArray<string>).includes(value);
}
