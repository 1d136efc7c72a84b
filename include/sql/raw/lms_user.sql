-- one row per version of an LMS user (SCIM id, last_modified_at), valid until its next version (valid_to)
-- A pull's new versions, as include/sql/staging/lms_user_new_version.sql (the placeholder `new_versions`)
-- decides them over the pull's users, which the loader binds to the name scim_pull_users. A version already
-- here keeps its first copy; lms/users.py then sets valid_to of the versions the pull superseded.
insert into raw.lms_user (
    lms_user_id, last_modified_at, user_name, external_id, work_email, primary_email, emails, is_active,
    created_at, resource, batch_id, extracted_at
)
select
    new_version.lms_user_id,
    new_version.last_modified_at,
    new_version.user_name,
    new_version.external_id,
    new_version.work_email,
    new_version.primary_email,
    new_version.emails,
    new_version.is_active,
    new_version.created_at,
    new_version.resource,
    %(batch_id)s as batch_id,
    now() as extracted_at
from ({new_versions}) as new_version
on conflict (lms_user_id, last_modified_at) do nothing
