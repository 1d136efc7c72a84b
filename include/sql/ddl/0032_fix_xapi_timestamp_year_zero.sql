-- original-sha256: 6e47d0f790a0bf493012402a0631380f33eb6101079d951ad4a1527d3e440bf8
-- body-sha256: 28c7b13f2052656af8233baea5264b86efd328261adb3d457e7838b098e1bc8d
-- Revised after release: core.parse_xapi_timestamp_text (functions/) moved to include/sql/repeatable/ (one
-- current definition, applied after the numbered migrations); a warehouse that applied the original keeps it.

-- core.parse_xapi_timestamp_text (0008) cast year 0000 on its fast path and raised "date/time field value
-- out of range" for the whole chunk instead of returning null for that statement (a timestamp problem, like
-- any other unusable time). Replaced with the fast path refusing year 0000; nothing else changes.
