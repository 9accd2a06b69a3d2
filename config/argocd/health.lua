-- Argo CD health check for kamal-operator's kinds (kamal.operator.dev Server, Deployment and
-- Accessory), kstatus semantics:
--   Healthy      Ready=True and status.observedGeneration == metadata.generation
--   Progressing  no status yet, observedGeneration behind, Reconciling=True, or Ready Unknown/absent
--   Degraded     Stalled=True, or Ready=False while nothing is in progress
--   Suspended    a Deployment with spec.suspend true (checked first: the controller leaves its
--                status as it was); the other kinds have no such field
-- The message is the deciding condition's message. Needs only Lua's base library.
local hs = {}

local function condition(conditions, conditionType)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

if obj.kind == "Deployment" and obj.spec ~= nil and obj.spec.suspend == true then
  local last = condition(obj.status ~= nil and obj.status.conditions or nil, "Ready")
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: nothing on the hosts is changed"
  if last ~= nil and last.message ~= nil and last.message ~= "" then
    hs.message = hs.message .. "; last Ready message: " .. last.message
  end
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to observe the object"
  return hs
end
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to observe generation " .. generation
  return hs
end

local stalled = condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

local reconciling = condition(status.conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling, "Reconciling")
  return hs
end

local ready = condition(status.conditions, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end
if generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to report on generation " .. generation
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end
if ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready, "Not ready")
  return hs
end
hs.status = "Progressing"
hs.message = describe(ready, "Readiness unknown")
return hs
