# frozen_string_literal: true

# The job classes a real `sidekiq` process loads (`sidekiq -r <this file>`) in
# integration/tests/sidekiq.rs; sidekiq_compat.rb pushes the jobs and checks
# what they recorded. Every job writes its record into the same dkv it was
# fetched from (Sidekiq.redis, the server's own pool), so the records go
# through whichever node the process is connected to (a follower forwards).
#
# Records (all keys under "t:"):
#   t:done            SET of job ids that finished (SADD)
#   t:runs:<id>       how many times job <id> ran (INCR): exactly 1 each
#   t:by:<tag>        INCR per job worked by the process with that tag
#   t:attempt:<jid>   LIST of the payloads a flaky job saw, one per attempt
#
# Scheduled-job poller: Sidekiq 6.4's Sidekiq::Scheduled::Enq moves due jobs
# out of the `schedule` and `retry` ZSETs with a Lua script (SCRIPT LOAD, then
# EVALSHA), and dkv has no scripting yet. DKV_SIDEKIQ_PLAIN_POLLER=1 swaps in
# NoScriptEnq below: the same move without Lua, as Sidekiq did before it used
# a script (ZRANGEBYSCORE ... LIMIT 0 1, then ZREM, and only the client whose
# ZREM answered 1 pushes the job, so two pollers never push it twice).

require "sidekiq"
require "json"

Redis.silence_deprecations = true # redis-rb 4.8 warns on every SADD

TAG = ENV.fetch("DKV_SIDEKIQ_TAG", "untagged")

# Moves due jobs from the `schedule` and `retry` ZSETs back to their queues
# without Lua; ZREM's reply decides which poller owns a job.
class NoScriptEnq
  def initialize
    @done = false
  end

  def enqueue_jobs(sorted_sets = %w[retry schedule])
    Sidekiq.redis do |conn|
      sorted_sets.each do |set|
        until @done
          job = conn.zrangebyscore(set, "-inf", Time.now.to_f.to_s, limit: [0, 1]).first
          break unless job
          # Another poller may have taken it between the two commands.
          next unless conn.zrem(set, job)
          Sidekiq::Client.push(Sidekiq.load_json(job))
        end
      end
    end
  end

  def terminate
    @done = true
  end
end

Sidekiq.configure_server do |config|
  if ENV["DKV_SIDEKIQ_PLAIN_POLLER"] == "1"
    config.options[:scheduled_enq] = NoScriptEnq
  end
  # Poll every second instead of every 5 s * processes, and skip the 10 s
  # initial wait (it is only skipped when this option is set).
  config.options[:poll_interval_average] = 1
end

# A plain job: records that it ran, once per id.
class RecordJob
  include Sidekiq::Worker
  sidekiq_options queue: "default"

  def perform(id)
    Sidekiq.redis do |conn|
      conn.incr("t:runs:#{id}")
      conn.incr("t:by:#{TAG}")
      conn.sadd("t:done", id)
    end
  end
end

# A job on another queue, pushed with a priority queue list (-q critical,3).
class CriticalJob
  include Sidekiq::Worker
  sidekiq_options queue: "critical"

  def perform(id)
    Sidekiq.redis do |conn|
      conn.incr("t:runs:#{id}")
      conn.sadd("t:done", id)
    end
  end
end

# Fails on its first attempt, succeeds on the next one. Each attempt appends
# the payload it was given (jid, retry_count, error_message ...) to
# t:attempt:<jid>, so the checker sees what Sidekiq stored in the `retry` ZSET.
# The retry is due 1 s later, plus Sidekiq's jitter (0..9 s on the first
# retry); the scheduled poller moves it back to its queue.
class FlakyJob
  include Sidekiq::Worker
    sidekiq_retry_in { |_count, _exception| 1 }

  def perform(id)
    attempts = Sidekiq.redis { |conn| conn.incr("t:runs:#{id}") }
    raise ArgumentError, "flaky #{id} failed on attempt #{attempts}" if attempts == 1
    Sidekiq.redis { |conn| conn.sadd("t:done", id) }
  end
end

# Like FlakyJob but its retry is due in an hour: it waits in the `retry` ZSET
# until the checker retries it by hand (Sidekiq::SortedEntry#retry, what the
# Web UI's "Retry Now" does: MULTI ZRANGEBYSCORE + ZREMRANGEBYSCORE).
class ParkedJob
  include Sidekiq::Worker
    sidekiq_retry_in { |_count, _exception| 3600 }

  def perform(id)
    attempts = Sidekiq.redis { |conn| conn.incr("t:runs:#{id}") }
    raise IOError, "parked #{id} failed on attempt #{attempts}" if attempts == 1
    Sidekiq.redis { |conn| conn.sadd("t:done", id) }
  end
end

# Always fails. Pushed with "retry" => 0 (the pushing client does not load
# these classes, so their sidekiq_options never reach the payload): it goes
# straight to the `dead` ZSET.
class DoomedJob
  include Sidekiq::Worker

  def perform(id)
    Sidekiq.redis { |conn| conn.incr("t:runs:#{id}") }
    raise "doomed #{id}"
  end
end

# Holds its worker thread until the checker sets t:release (at most 20 s), so
# a heartbeat reports it: `busy` in the process hash and an entry in
# <identity>:workers.
class BlockerJob
  include Sidekiq::Worker
  sidekiq_options queue: "default"

  def perform(id)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 20
    Sidekiq.redis do |conn|
      sleep 0.05 until conn.get("t:release") || Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      conn.incr("t:runs:#{id}")
      conn.sadd("t:done", id)
    end
  end
end

# Records each flaky attempt's payload (what Sidekiq's retry put back).
class RecordAttempts
  def call(_worker, job, _queue)
    if %w[FlakyJob ParkedJob].include?(job["class"])
      Sidekiq.redis { |conn| conn.rpush("t:attempt:#{job["jid"]}", JSON.generate(job)) }
    end
    yield
  end
end

Sidekiq.configure_server do |config|
  config.server_middleware do |chain|
    chain.add RecordAttempts
  end
end
