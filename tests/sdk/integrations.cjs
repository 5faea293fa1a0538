// Every `Integrations` method of Elastic Path's JS SDK, run against a hub through the SDK's own
// auth flow (it fetches its token from /oauth/access_token, and fetches a new one on a 401).
//
// The SDK is configured only with host, protocol, client_id and client_secret. A second SDK
// client, of a `publish` key, publishes the event that the delivery step waits for (the SDK has
// no call of its own for the hub's ingest, so it goes through the SDK's `request.send`).
//
// Environment: HUB_HOST (host:port), HUB_PROTOCOL, CLIENT_ID, CLIENT_SECRET, PUBLISH_CLIENT_ID,
// PUBLISH_CLIENT_SECRET, SINK_URL (a webhook endpoint that answers 200).
// Output: one JSON document on stdout, {"results": [{"method", "ok", "detail"}, ...]}; the
// exit status is 0 when every step passed. Run from an empty working directory: the SDK keeps
// its credentials in ./localStorage.
'use strict'

const { gateway } = require('@elasticpath/js-sdk')

// The SDK reports its token's status with console.info; stdout is for the results alone.
console.info = (...args) => console.error(...args)

const env = (name) => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}

const config = {
  host: env('HUB_HOST'),
  protocol: env('HUB_PROTOCOL'),
  client_id: env('CLIENT_ID'),
  client_secret: env('CLIENT_SECRET')
}
const EP = gateway(config)
const publisher = gateway({
  name: 'publisher',
  host: config.host,
  protocol: config.protocol,
  client_id: env('PUBLISH_CLIENT_ID'),
  client_secret: env('PUBLISH_CLIENT_SECRET')
})
const SINK_URL = env('SINK_URL')
const SECRET_KEY = 'sdk-secret-key-0042'

const results = []

function check (condition, message) {
  if (!condition) throw new Error(message)
}

async function step (method, body) {
  try {
    const detail = await body()
    results.push({ method, ok: true, detail })
  } catch (error) {
    const detail = error instanceof Error ? error.message : JSON.stringify(error)
    results.push({ method, ok: false, detail })
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const names = (list) => list.data.map((integration) => integration.name)

async function main () {
  let orders, archive, job

  await step('Create', async () => {
    const created = await EP.Integrations.Create({
      name: 'sdk orders',
      description: 'created by the SDK',
      enabled: true,
      integration_type: 'webhook',
      observes: ['order.created'],
      configuration: { url: SINK_URL, secret_key: SECRET_KEY }
    })
    orders = created.data
    check(orders.type === 'integration' && orders.id, 'no integration in the answer')
    check(orders.configuration.secret_key.endsWith('0042'), 'the secret is not masked as EP does')
    const second = await EP.Integrations.Create({
      name: 'sdk archive',
      description: 'disabled',
      enabled: false,
      integration_type: 'webhook',
      observes: ['order.*'],
      configuration: { url: SINK_URL }
    })
    archive = second.data
    return { ids: [orders.id, archive.id] }
  })

  await step('All', async () => {
    const all = await EP.Integrations.All()
    check(all.data.length === 2, `${all.data.length} integrations listed, not 2`)
    check(all.meta.results.total === 2, 'meta.results.total is not 2')
    check(all.data[0].id === archive.id, 'not newest first')
    return { names: names(all), total: all.meta.results.total }
  })

  await step('Limit/Offset', async () => {
    const page = await EP.Integrations.Limit(1).Offset(1).All()
    check(page.data.length === 1, `${page.data.length} on the page, not 1`)
    check(page.data[0].id === orders.id, 'the second page is not the older integration')
    check(page.meta.page.limit === 1 && page.meta.page.offset === 1, 'meta.page is not 1/1')
    check(page.links.prev !== null && page.links.next === null, 'the links are not those of page 2 of 2')
    return { names: names(page), page: page.meta.page }
  })

  await step('Filter', async () => {
    const disabled = await EP.Integrations.Filter({ eq: { enabled: false } }).All()
    check(JSON.stringify(names(disabled)) === '["sdk archive"]', `eq(enabled,false) gave ${names(disabled)}`)
    const both = await EP.Integrations.Filter({ eq: { enabled: true, integration_type: 'webhook' } }).All()
    check(JSON.stringify(names(both)) === '["sdk orders"]', `two eq terms gave ${names(both)}`)
    const like = await EP.Integrations.Filter({ like: { name: '*ARCHIVE*' } }).All()
    check(JSON.stringify(names(like)) === '["sdk archive"]', `like gave ${names(like)}`)
    const none = await EP.Integrations.Filter({ eq: { integration_type: 'stomp' } }).All()
    check(none.data.length === 0, 'eq(integration_type,stomp) found webhooks')
    return { disabled: names(disabled), enabled_webhooks: names(both), like: names(like) }
  })

  await step('Sort', async () => {
    const byName = await EP.Integrations.Sort('name').All()
    check(JSON.stringify(names(byName)) === '["sdk archive","sdk orders"]', `sort=name gave ${names(byName)}`)
    const reversed = await EP.Integrations.Sort('-name').All()
    check(JSON.stringify(names(reversed)) === '["sdk orders","sdk archive"]', `sort=-name gave ${names(reversed)}`)
    const oldest = await EP.Integrations.Sort('created_at').All()
    check(oldest.data[0].id === orders.id, 'sort=created_at is not oldest first')
    return { name: names(byName), '-name': names(reversed) }
  })

  await step('Get', async () => {
    const one = await EP.Integrations.Get(orders.id)
    check(one.data.id === orders.id && one.data.name === 'sdk orders', 'not the integration asked for')
    check(one.data.links.self.endsWith(`/v2/integrations/${orders.id}`), 'links.self is wrong')
    return { name: one.data.name, observes: one.data.observes }
  })

  await step('Update (partial)', async () => {
    const updated = await EP.Integrations.Update(orders.id, { description: 'changed by the SDK' })
    check(updated.data.description === 'changed by the SDK', 'the description did not change')
    check(updated.data.name === 'sdk orders', 'a partial update changed the name')
    check(updated.data.configuration.url === SINK_URL, 'a partial update changed the configuration')
    return { description: updated.data.description, name: updated.data.name }
  })

  await step('Update (whole echo)', async () => {
    const current = (await EP.Integrations.Get(orders.id)).data
    const echoed = { ...current, name: 'sdk orders (renamed)' }
    const updated = await EP.Integrations.Update(orders.id, echoed)
    check(updated.data.name === 'sdk orders (renamed)', 'the echoed update did not rename')
    check(updated.data.configuration.secret_key === current.configuration.secret_key, 'the masked secret changed')
    return { name: updated.data.name, echoed_keys: Object.keys(current).sort() }
  })

  await step('delivery', async () => {
    const published = await publisher.request.send('events', 'POST', {
      type: 'event',
      triggered_by: 'order.created',
      id: 'sdk-order-1',
      payload: { data: { type: 'order', id: 'sdk-order-1', status: 'complete' } }
    })
    check(published.data.jobs.total === 1, `the event made ${published.data.jobs.total} jobs, not 1`)
    const deadline = Date.now() + 30000
    while (Date.now() < deadline) {
      const jobs = await EP.Integrations.GetJobs(orders.id)
      if (jobs.data.length && jobs.data[0].status === 'succeeded') {
        job = jobs.data[0]
        return { event: published.data.id, job: job.id, status: job.status }
      }
      await sleep(200)
    }
    throw new Error('the job did not succeed within 30 s')
  })

  await step('GetJobs', async () => {
    const jobs = await EP.Integrations.GetJobs(orders.id)
    check(jobs.data.length === 1 && jobs.data[0].type === 'integration-job', 'not one integration-job')
    check(jobs.data[0].id === job.id, 'not the delivered job')
    return { ids: jobs.data.map((j) => j.id), statuses: jobs.data.map((j) => j.status) }
  })

  await step('GetLogs', async () => {
    const logs = await EP.Integrations.GetLogs(orders.id)
    check(logs.data.length === 1 && logs.data[0].type === 'integration-log', 'not one integration-log')
    check(logs.results.total === 1, 'results.total (IntegrationLogsResponse) is not 1')
    check(logs.meta.total === 1 && logs.meta.page.total === 1, 'meta.total is not the page total')
    check(logs.data[0].succeeded === true && logs.data[0].status_code === 200, 'the attempt did not succeed')
    check(logs.data[0].relationships.job.data.id === job.id, 'the log is not the job\'s')
    return { total: logs.results.total, succeeded: logs.data[0].succeeded }
  })

  await step('GetAllLogs', async () => {
    const logs = await EP.Integrations.GetAllLogs()
    check(logs.results.total === 1 && logs.meta.results.total === 1, 'results.total is not 1')
    return { total: logs.results.total }
  })

  await step('GetAllLogsForJob', async () => {
    const logs = await EP.Integrations.GetAllLogsForJob(orders.id, job.id)
    check(logs.data.length === 1 && logs.data[0].attempt === 1, 'not the one first attempt')
    check(logs.results.total === 1, 'results.total is not 1')
    return { attempts: logs.data.map((log) => log.attempt) }
  })

  await step('Delete', async () => {
    const deleted = await EP.Integrations.Delete(orders.id)
    check(deleted.data.id === orders.id && deleted.data.type === 'integration', 'not the deleted integration')
    await EP.Integrations.Delete(archive.id)
    let status = null
    try {
      await EP.Integrations.Get(orders.id)
    } catch (error) {
      status = error.errors && error.errors[0].status
    }
    check(status === 404, `a deleted integration answered ${status}, not 404`)
    const left = await EP.Integrations.All()
    check(left.data.length === 0, 'integrations are left after deleting both')
    return { deleted: deleted.data.id, then: status }
  })
}

main()
  .catch((error) => results.push({ method: 'script', ok: false, detail: String(error) }))
  .finally(() => {
    process.stdout.write(JSON.stringify({ results }) + '\n')
    process.exitCode = results.every((r) => r.ok) ? 0 : 1
  })
