-- Suspended apps (client-api.md §2.4 `app_suspended`): no logins, no sessions, no Platform API.
alter table apps add column suspended boolean not null default false;
