#!/usr/bin/env ruby
# frozen_string_literal: true

# Renders a BOSH job template the way the director does, so tests exercise the
# real ERB of jobs/*/templates rather than a reimplementation of it.
#
#   render_template.rb JOB_DIR TEMPLATE CONTEXT_JSON
#
# TEMPLATE is a key of the spec's `templates:` map (e.g. `bpm.yml.erb`),
# `monit` for the job's monit file (the director renders it as ERB too, with
# the same properties and links), or `--all` to render every template of the
# job and its monit file (as the director does on deploy) and print one JSON
# object mapping each destination path to its text (the monit file's is `monit`).
# CONTEXT_JSON is a file holding
#
#   {"properties": {...}, "spec": {...}, "links": {...}}
#
# - properties: the job's properties as a manifest nests them. Spec defaults
#   fill in what is unset. A property the spec does not declare is an error
#   here (the director would drop it silently; in a test it is a typo).
# - spec: overrides for the instance spec (`spec.address`, `spec.az`, ...).
# - links: one entry per consumed link: {"instances": [...], "address": "...",
#   and either "properties" (already as the link carries them) or "from_job"
#   plus "properties" (the provider job's manifest properties; the link then
#   carries what the provider's spec lists under `provides`, defaults applied,
#   exactly as the director resolves it)}.
#
# Output is the rendered text on stdout; errors go to stderr and the exit
# status is non-zero. Only the Ruby standard library is used.

require 'erb'
require 'json'
require 'ostruct'
require 'yaml'

# A template could not be rendered; the message is what an operator would read.
class RenderError < StandardError; end

# Nested-hash look-up by a dotted name, as bosh-template resolves `p('a.b.c')`.
module DottedLookup
  module_function

  def dig(hash, name)
    name.to_s.split('.').reduce(hash) do |node, key|
      return nil unless node.is_a?(Hash)

      node[key]
    end
  end

  def store(hash, name, value)
    *parents, leaf = name.split('.')
    node = parents.reduce(hash) { |h, key| h[key] ||= {} }
    node[leaf] = value
  end
end

# The parts of a job's `spec` file that rendering needs.
class JobSpec
  attr_reader :dir, :name, :templates, :properties, :consumes, :provides

  def initialize(dir)
    @dir = dir
    path = File.join(dir, 'spec')
    raise RenderError, "no spec file at #{path}" unless File.file?(path)

    doc = YAML.safe_load(File.read(path)) || {}
    @name = doc.fetch('name') { raise RenderError, "#{path}: no name" }
    @templates = doc['templates'] || {}
    @properties = doc['properties'] || {}
    @consumes = doc['consumes'] || []
    @provides = doc['provides'] || []
  end

  # The job's properties as the director hands them to templates: every
  # declared property, from the manifest or else the spec's default.
  def resolve_properties(manifest)
    reject_undeclared(manifest || {}, [])
    @properties.each_with_object({}) do |(name, decl), out|
      value = DottedLookup.dig(manifest || {}, name)
      value = (decl || {})['default'] if value.nil?
      DottedLookup.store(out, name, value)
    end
  end

  private

  def reject_undeclared(node, path)
    node.each do |key, value|
      here = (path + [key.to_s]).join('.')
      next if @properties.key?(here)

      below = @properties.keys.any? { |name| name.start_with?("#{here}.") }
      unless below && value.is_a?(Hash)
        raise RenderError, "property '#{here}' is not declared in #{@name}'s spec"
      end

      reject_undeclared(value, path + [key.to_s])
    end
  end
end

# One instance of a linked instance group, as `link(...).instances` yields it.
LinkInstance = Struct.new(:name, :index, :id, :az, :address, :bootstrap, keyword_init: true)

# The shared else-branch of if_p / if_link, as in bosh-template.
class ElseBlock
  def initialize(context, active)
    @context = context
    @active = active
  end

  def else
    yield if @active
  end

  def else_if_p(*names, &block)
    @active ? @context.if_p(*names, &block) : self
  end

  def else_if_link(name, &block)
    @active ? @context.if_link(name, &block) : self
  end
end

# A consumed link: its provider's properties and instances.
class EvaluationLink
  attr_reader :name, :instances, :properties

  def initialize(name, properties, instances, group_address)
    @name = name
    @properties = properties
    @instances = instances
    @group_address = group_address
  end

  def p(*args)
    names = Array(args[0])
    names.each do |prop|
      value = DottedLookup.dig(@properties, prop)
      return value unless value.nil?
    end
    return args[1] if args.length == 2

    raise RenderError, "Can't find link property '#{names.join("', '")}' in link '#{@name}'"
  end

  def if_p(*names)
    values = names.map do |prop|
      value = DottedLookup.dig(@properties, prop)
      return ElseBlock.new(self, true) if value.nil?

      value
    end
    yield(*values)
    ElseBlock.new(self, false)
  end

  # The link's group address; the director gives one when DNS addresses are on.
  def address(**_criteria)
    return @group_address if @group_address

    raise RenderError, "link '#{@name}' has no group address in this context"
  end
end

# The object templates are evaluated against: p, if_p, spec, link, if_link.
class TemplateContext
  attr_reader :spec, :name, :index, :raw_properties

  def initialize(properties, spec_hash, links, consumed)
    @raw_properties = properties
    @spec = openstruct(spec_hash)
    @name = spec_hash.dig('job', 'name')
    @index = spec_hash['index']
    @links = links
    @consumed = consumed
  end

  def properties
    openstruct(@raw_properties)
  end

  def p(*args)
    names = Array(args[0])
    names.each do |prop|
      value = DottedLookup.dig(@raw_properties, prop)
      return value unless value.nil?
    end
    return args[1] if args.length == 2

    raise RenderError, "Can't find property '#{names.join("', '")}'"
  end

  def if_p(*names)
    values = names.map do |prop|
      value = DottedLookup.dig(@raw_properties, prop)
      return ElseBlock.new(self, true) if value.nil?

      value
    end
    yield(*values)
    ElseBlock.new(self, false)
  end

  def link(link_name)
    unless @consumed.include?(link_name)
      raise RenderError, "Can't find link '#{link_name}' (the job's spec does not consume it)"
    end

    @links.fetch(link_name) { raise RenderError, "Can't find link '#{link_name}'" }
  end

  def if_link(link_name)
    found = @links[link_name]
    return ElseBlock.new(self, true) if found.nil?

    yield found
    ElseBlock.new(self, false)
  end

  def fresh_binding
    binding
  end

  private

  def openstruct(object)
    case object
    when Hash then OpenStruct.new(object.transform_values { |v| openstruct(v) })
    when Array then object.map { |v| openstruct(v) }
    else object
    end
  end
end

# Builds the template context for one job from a test's JSON description.
class Renderer
  # The job's monit file: at the job's root, not under templates/, and not in the spec.
  MONIT = 'monit'

  DEFAULT_SPEC = {
    'deployment' => 'postgres-service',
    'id' => '5f6c0b55-3a1d-4c3e-9b8a-1d2e3f4a5b6c',
    'index' => 0,
    'az' => 'z1',
    'bootstrap' => true,
    'address' => '10.0.0.10',
    'ip' => '10.0.0.10',
    'networks' => { 'default' => { 'ip' => '10.0.0.10', 'default' => %w[dns gateway] } },
    'persistent_disk' => 10_240
  }.freeze

  def initialize(job_dir, context)
    @job = JobSpec.new(job_dir)
    @properties = @job.resolve_properties(context['properties'])
    spec_hash = DEFAULT_SPEC.merge('name' => @job.name, 'job' => { 'name' => @job.name })
    @spec = spec_hash.merge(context['spec'] || {})
    @links = resolve_links(context['links'] || {})
  end

  def render(template)
    return render_file(template, monit_path) if template == MONIT

    unless @job.templates.key?(template)
      raise RenderError, "template '#{template}' is not listed in #{@job.name}'s spec"
    end

    path = File.join(@job.dir, 'templates', template)
    raise RenderError, "template '#{template}' is listed in the spec but #{path} does not exist" unless File.file?(path)

    render_file(template, path)
  end

  def render_all
    rendered = @job.templates.each_with_object({}) { |(src, dest), out| out[dest] = render(src) }
    rendered[MONIT] = render(MONIT) if File.file?(monit_path)
    rendered
  end

  private

  def monit_path
    File.join(@job.dir, MONIT)
  end

  def render_file(template, path)
    raise RenderError, "#{@job.name} has no #{template} file at #{path}" unless File.file?(path)

    erb = ERB.new(File.read(path), trim_mode: '-')
    erb.filename = template
    context = TemplateContext.new(@properties, @spec, @links, consumed_names)
    begin
      erb.result(context.fresh_binding)
    rescue StandardError, ScriptError => e
      line = e.backtrace&.find { |frame| frame.start_with?("#{template}:") }
      where = line ? "line #{line.split(':')[1]}: " : ''
      raise RenderError, "Error filling in template '#{template}' (#{where}#{e.message})"
    end
  end

  def consumed_names
    @job.consumes.map { |c| c['name'] }
  end

  def resolve_links(given)
    extra = given.keys - consumed_names
    raise RenderError, "link '#{extra.first}' is not consumed by #{@job.name}'s spec" unless extra.empty?

    @job.consumes.each_with_object({}) do |decl, out|
      link_name = decl['name']
      entry = given[link_name]
      if entry.nil?
        next if decl['optional']

        raise RenderError, "link '#{link_name}' (type #{decl['type']}) is required by #{@job.name}'s spec"
      end
      out[link_name] = build_link(link_name, decl['type'], entry)
    end
  end

  def build_link(link_name, type, entry)
    properties = entry['properties'] || {}
    properties = provider_properties(entry['from_job'], type, properties) if entry['from_job']
    instances = (entry['instances'] || []).each_with_index.map do |inst, i|
      LinkInstance.new(
        name: inst.fetch('name', link_name), index: inst.fetch('index', i),
        id: inst.fetch('id', format('00000000-0000-4000-8000-%012d', i)),
        az: inst.fetch('az', 'z1'), address: inst.fetch('address'),
        bootstrap: inst.fetch('bootstrap', i.zero?)
      )
    end
    raise RenderError, "link '#{link_name}' has no instances" if instances.empty?

    EvaluationLink.new(link_name, properties, instances, entry['address'])
  end

  # What the director puts in a link: the provider's properties named under
  # `provides`, from its manifest or else its spec's defaults.
  def provider_properties(provider_name, type, manifest)
    provider = JobSpec.new(File.join(File.dirname(@job.dir), provider_name))
    provided = provider.provides.select { |p| p['type'] == type }
    raise RenderError, "job '#{provider_name}' provides no link of type '#{type}'" if provided.length != 1

    resolved = provider.resolve_properties(manifest)
    (provided.first['properties'] || []).each_with_object({}) do |name, out|
      unless provider.properties.key?(name)
        raise RenderError, "link property '#{name}' of '#{provider_name}' is not declared in its spec"
      end

      DottedLookup.store(out, name, DottedLookup.dig(resolved, name))
    end
  end
end

def main(argv)
  unless argv.length == 3
    warn 'usage: render_template.rb JOB_DIR TEMPLATE|--all CONTEXT_JSON'
    return 2
  end
  job_dir, template, context_path = argv
  context = JSON.parse(File.read(context_path))
  renderer = Renderer.new(job_dir, context)
  if template == '--all'
    $stdout.write(JSON.generate(renderer.render_all))
  else
    $stdout.write(renderer.render(template))
  end
  0
rescue RenderError, JSON::ParserError, Psych::Exception, KeyError, SystemCallError => e
  warn e.message
  1
end

exit(main(ARGV)) if $PROGRAM_NAME == __FILE__
