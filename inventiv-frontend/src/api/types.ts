// Names for the API's types, all generated from /openapi.json (schema.d.ts).
import type { components, paths } from './schema';

type S = components['schemas'];

export type Activation = S['Activation'];
export type ActionLogEntry = S['ActionLogEntry'];
export type ApiKey = S['ApiKey'];
export type AuditLog = S['AuditLog'];
export type CreateKey = S['CreateKey'];
export type CreateModel = S['CreateModel'];
export type CreatedKey = S['CreatedKey'];
export type CreateInvitation = S['CreateInvitation'];
export type CurrentOrganization = S['CurrentOrganization'];
export type Deploy = S['Deploy'];
export type ErrorBody = S['ErrorBody'];
export type HistoryEntry = S['HistoryEntry'];
export type Instance = S['Instance'];
export type InstanceMetrics = S['InstanceMetrics'];
export type InstanceType = S['InstanceType'];
export type Invitation = S['Invitation'];
export type InvitationPreview = S['InvitationPreview'];
export type Me = S['Me'];
export type Member = S['Member'];
export type Membership = S['Membership'];
export type Model = S['Model'];
export type Organization = S['Organization'];
export type OrgRole = S['OrgRole'];
export type Provider = S['Provider'];
export type RuntimeModel = S['RuntimeModel'];
export type Session = S['Session'];
export type SetActivation = S['SetActivation'];
export type Switched = S['Switched'];
export type TokenResponse = S['TokenResponse'];
export type UpdateInstanceType = S['UpdateInstanceType'];
export type UpdateKey = S['UpdateKey'];
export type UpdateModel = S['UpdateModel'];
export type UpdateOrganization = S['UpdateOrganization'];
export type UsageLine = S['UsageLine'];
export type Zone = S['Zone'];

export type ApiPath = keyof paths;
