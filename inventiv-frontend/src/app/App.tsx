// The routes: public pages (login, password reset, invitations) and the
// logged-in ones inside the layout.
import { Link, Route, Routes } from 'react-router';
import { ForgotPasswordPage } from '../auth/ForgotPasswordPage';
import { LoginPage } from '../auth/LoginPage';
import { ResetPasswordPage } from '../auth/ResetPasswordPage';
import { CatalogPage } from '../catalog/CatalogPage';
import { DashboardPage } from '../dashboard/DashboardPage';
import { InstancePage } from '../instances/InstancePage';
import { InstancesPage } from '../instances/InstancesPage';
import { AcceptInvitationPage } from '../invitations/AcceptInvitationPage';
import { ApiKeysPage } from '../keys/ApiKeysPage';
import { MembersPage } from '../organizations/MembersPage';
import { OrganizationPage } from '../organizations/OrganizationPage';
import { HostPage } from '../hosts/HostPage';
import { HostsPage } from '../hosts/HostsPage';
import { ServicePage } from '../services/ServicePage';
import { ServicesPage } from '../services/ServicesPage';
import { PlaygroundPage } from '../playground/PlaygroundPage';
import { SessionsPage } from '../account/SessionsPage';
import { CatalogAdminPage } from '../catalog/CatalogAdminPage';
import { RuntimeModelsPage } from '../runtime/RuntimeModelsPage';
import { UsagePage } from '../usage/UsagePage';
import { RequestsPage } from '../requests/RequestsPage';
import { FinOpsPage } from '../finops/FinOpsPage';
import { StatementsPage } from '../finops/StatementsPage';
import { BudgetsPage } from '../budgets/BudgetsPage';
import { MarketplacePage } from '../offerings/MarketplacePage';
import { OfferingsPage } from '../offerings/OfferingsPage';
import { ProvidersPage } from '../providers/ProvidersPage';
import { ReconciliationPage } from '../providers/ReconciliationPage';
import { Guard, Layout } from './Layout';

export function App() {
  return (
    <Routes>
      <Route path="/login" element={<LoginPage />} />
      <Route path="/forgot-password" element={<ForgotPasswordPage />} />
      <Route path="/reset-password" element={<ResetPasswordPage />} />
      <Route path="/invitations/:token" element={<AcceptInvitationPage />} />
      <Route element={<Layout />}>
        <Route index element={<DashboardPage />} />
        <Route path="/instances" element={<InstancesPage />} />
        <Route path="/instances/:id" element={<InstancePage />} />
        <Route path="/services" element={<Guard module="services"><ServicesPage /></Guard>} />
        <Route path="/services/:id" element={<Guard module="services"><ServicePage /></Guard>} />
        <Route path="/hosts" element={<Guard module="hosts"><HostsPage /></Guard>} />
        <Route path="/hosts/:id" element={<Guard module="hosts"><HostPage /></Guard>} />
        <Route path="/keys" element={<ApiKeysPage />} />
        <Route path="/playground" element={<PlaygroundPage />} />
        <Route path="/runtime" element={<Guard module="runtime"><RuntimeModelsPage /></Guard>} />
        <Route path="/usage" element={<Guard module="usage"><UsagePage /></Guard>} />
        <Route path="/requests" element={<Guard module="requests"><RequestsPage /></Guard>} />
        <Route path="/finops" element={<Guard module="finops"><FinOpsPage /></Guard>} />
        <Route path="/statements" element={<Guard module="statements"><StatementsPage /></Guard>} />
        <Route path="/budgets" element={<Guard module="budgets"><BudgetsPage /></Guard>} />
        <Route path="/offerings" element={<Guard module="offerings"><OfferingsPage /></Guard>} />
        <Route path="/marketplace" element={<MarketplacePage />} />
        <Route path="/catalog" element={<Guard module="catalog"><CatalogPage /></Guard>} />
        <Route path="/members" element={<Guard module="members"><MembersPage /></Guard>} />
        <Route path="/sessions" element={<SessionsPage />} />
        <Route path="/settings/providers" element={<Guard module="providers"><ProvidersPage /></Guard>} />
        <Route path="/reconciliation" element={<Guard module="reconciliation"><ReconciliationPage /></Guard>} />
        <Route path="/settings/catalog" element={<Guard module="catalog-settings"><CatalogAdminPage /></Guard>} />
        <Route path="/organization" element={<OrganizationPage />} />
        <Route path="*" element={<NotFound />} />
      </Route>
    </Routes>
  );
}

function NotFound() {
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        <Link to="/">Back to the dashboard</Link>
      </p>
    </section>
  );
}
