using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Checkpoints;

/// <summary>
/// Reads and writes Hugging Face safetensors files: an 8-byte little-endian header length, a JSON header
/// <c>{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}</c>, then the raw tensor bytes.
/// </summary>
public static class SafeTensorsFile
{
    /// <summary>Reads every tensor as a CPU tensor of the stored dtype.</summary>
    public static Dictionary<string, Tensor> Read(string path) => Read(path, out _);

    /// <summary>Reads every tensor, and the header's <c>__metadata__</c> (empty if absent).</summary>
    public static Dictionary<string, Tensor> Read(string path, out Dictionary<string, string> metadata)
    {
        using var stream = OpenForReading(path);
        var header = SafeTensorsHeader.Read(stream, path);
        metadata = header.Metadata;
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            // Entries come sorted by offset, so the file is read front to back in one pass.
            foreach (var entry in header.Entries)
            {
                var tensor = empty(entry.Shape, entry.Type, CPU);
                tensors.Add(entry.Name, tensor);
                ReadInto(stream, header.DataStart + entry.Begin, entry.End - entry.Begin, tensor, path, entry.Name);
            }
        }
        catch
        {
            foreach (var t in tensors.Values) t.Dispose();
            throw;
        }
        return tensors;
    }

    /// <summary>Name, dtype and shape of every tensor of the file, from the header alone (no tensor data is read).</summary>
    public static IReadOnlyList<SafeTensorsEntry> ReadEntries(string path)
    {
        using var stream = OpenForReading(path);
        return SafeTensorsHeader.Read(stream, path).Entries
            .Select(e => new SafeTensorsEntry(e.Name, e.Type, e.Shape, e.End - e.Begin)).ToList();
    }

    /// <summary>
    /// Streams the file's tensors into destinations chosen by <paramref name="destinationFor"/> (null: skip the tensor),
    /// so that a model of several GB needs its own size in memory plus one tensor, not twice its size. A destination of
    /// the stored dtype and shape (contiguous, on the CPU) receives the bytes directly; otherwise the tensor is read into
    /// a temporary and copied (converting dtype or device). Destinations are written without tracking gradients.
    /// <para>With <paramref name="memoryMap"/>, a destination of the stored dtype on the CPU whose data is aligned in the
    /// file is not filled but re-pointed (<c>set_</c>) at a copy-on-write memory map of the file (libtorch's
    /// <c>from_file</c>, MAP_PRIVATE): nothing is read until used, the pages are the operating system's file cache
    /// (shared between processes, evictable), and the destination's own allocation is released. Writing to such a tensor
    /// copies only the written pages; the file never changes. Other tensors are streamed as above.</para>
    /// </summary>
    public static void ReadInto(string path, Func<SafeTensorsEntry, Tensor?> destinationFor, bool memoryMap = false)
    {
        using var stream = OpenForReading(path);
        var header = SafeTensorsHeader.Read(stream, path);
        var maps = new Dictionary<ScalarType, Tensor>();
        using var noGrad = no_grad();
        try
        {
            foreach (var entry in header.Entries)
            {
                var destination = destinationFor(new SafeTensorsEntry(entry.Name, entry.Type, entry.Shape, entry.End - entry.Begin));
                if (destination is null) continue;
                if (!destination.shape.SequenceEqual(entry.Shape))
                    throw ContinualMoEException.ForFile(path,
                        $"tensor '{entry.Name}' has shape [{string.Join(", ", entry.Shape)}] but its destination is [{string.Join(", ", destination.shape)}]");
                var start = header.DataStart + entry.Begin;
                var sameLayout = destination.dtype == entry.Type && destination.device_type == DeviceType.CPU;
                if (memoryMap && sameLayout && entry.End > entry.Begin && start % destination.ElementSize == 0)
                {
                    var elementSize = destination.ElementSize;
                    if (!maps.TryGetValue(entry.Type, out var map))
                        maps[entry.Type] = map = from_file(path, shared: false, size: stream.Length / elementSize, dtype: entry.Type);
                    using var view = map.as_strided(entry.Shape, ContiguousStrides(entry.Shape), start / elementSize);
                    Repoint(destination, view);
                    continue;
                }
                if (sameLayout && destination.is_contiguous())
                {
                    ReadInto(stream, start, entry.End - entry.Begin, destination, path, entry.Name);
                    continue;
                }
                using var temporary = empty(entry.Shape, entry.Type, CPU);
                ReadInto(stream, start, entry.End - entry.Begin, temporary, path, entry.Name);
                destination.copy_(temporary);
            }
        }
        finally
        {
            // Only the handles: the mapping lives on in the tensors that point at it.
            foreach (var map in maps.Values) map.Dispose();
        }
    }

    /// <summary>destination.set_(source). TorchSharp 0.107 wraps set_'s result in a new Tensor object around the
    /// destination's own native handle, so disposing or finalizing that wrapper would free the destination's handle:
    /// it is kept out of dispose scopes and finalization.</summary>
    private static void Repoint(Tensor destination, Tensor source)
    {
        var result = destination.set_(source);
        result.DetachFromDisposeScope();
        if (result.Handle == destination.Handle) GC.SuppressFinalize(result);
        else result.Dispose();
    }

    private static long[] ContiguousStrides(long[] shape)
    {
        var strides = new long[shape.Length];
        long stride = 1;
        for (var d = shape.Length - 1; d >= 0; d--)
        {
            strides[d] = stride;
            stride *= shape[d];
        }
        return strides;
    }

    /// <summary>Reads only the header's <c>__metadata__</c>, without touching the tensor data.</summary>
    public static Dictionary<string, string> ReadMetadata(string path)
    {
        using var stream = OpenForReading(path);
        return SafeTensorsHeader.Read(stream, path).Metadata;
    }

    /// <summary>
    /// Writes the tensors (sorted by name, as contiguous CPU copies) atomically. The header is padded with spaces to a
    /// multiple of 8 bytes, as the reference implementation does, so the data buffer starts aligned.
    /// </summary>
    public static void Write(string path, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var names = tensors.Keys.OrderBy(n => n, StringComparer.Ordinal).ToList();
        var header = BuildHeader(path, names, tensors, metadata);
        AtomicFile.Write(path, stream =>
        {
            stream.Write(BitConverter.GetBytes((ulong)header.Length));
            stream.Write(header);
            foreach (var name in names)
            {
                // The scope disposes the temporary detached/CPU/contiguous aliases, never the caller's tensors.
                using var scope = NewDisposeScope();
                var cpu = tensors[name].detach().cpu().contiguous();
                if (cpu.numel() > 0) stream.Write(cpu.bytes);
            }
        });
    }

    private static byte[] BuildHeader(string path, List<string> names, IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata.OrderBy(p => p.Key, StringComparer.Ordinal)) json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var name in names)
            {
                if (name == "__metadata__")
                    throw ContinualMoEException.ForFile(path, "a tensor cannot be named __metadata__ in a safetensors file");
                var tensor = tensors[name];
                if (!SafeTensorsDType.TryGetName(tensor.dtype, out var dtypeName))
                    throw ContinualMoEException.ForFile(path, $"tensor '{name}' has dtype {tensor.dtype}, which safetensors writing does not support ({SafeTensorsDType.SupportedNames})");
                var size = tensor.numel() * tensor.ElementSize;
                if (size > int.MaxValue)
                    throw ContinualMoEException.ForFile(path, $"tensor '{name}' is {size} bytes; tensors over 2 GiB are not supported");
                json.WriteStartObject(name);
                json.WriteString("dtype", dtypeName);
                json.WriteStartArray("shape");
                foreach (var d in tensor.shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + size);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += size;
            }
            json.WriteEndObject();
        }
        var padding = (int)((8 - buffer.Length % 8) % 8);
        for (var i = 0; i < padding; i++) buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }

    private static FileStream OpenForReading(string path)
    {
        if (!File.Exists(path)) throw ContinualMoEException.ForFile(path, "file not found");
        try
        {
            // No FileStream buffer: tensor reads go straight from the OS into the tensor's memory.
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw ContinualMoEException.ForFile(path, $"cannot open: {e.Message}", e);
        }
    }

    /// <summary>Copies <paramref name="length"/> file bytes directly into the tensor's storage (no intermediate array).</summary>
    private static void ReadInto(Stream stream, long position, long length, Tensor tensor, string path, string name)
    {
        if (length == 0) return;
        if (length > int.MaxValue)
            throw ContinualMoEException.ForFile(path, $"tensor '{name}' is {length} bytes; tensors over 2 GiB are not supported");
        stream.Position = position;
        try
        {
            stream.ReadExactly(tensor.bytes);
        }
        catch (EndOfStreamException e)
        {
            throw ContinualMoEException.ForFile(path, $"file is truncated inside tensor '{name}'", e);
        }
        catch (IOException e)
        {
            throw ContinualMoEException.ForFile(path, $"cannot read tensor '{name}': {e.Message}", e);
        }
    }
}

/// <summary>One tensor of a safetensors header: name, stored dtype, shape and size in bytes.</summary>
public sealed record SafeTensorsEntry(string Name, torch.ScalarType Type, long[] Shape, long ByteSize);
