import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;

/**
 * The article's server (ReuseAddress.java), as tcplab runs it for the `java`
 * experiment: a ServerSocket on the wildcard address that answers every
 * connection with "Hello\n" and closes it.
 *
 * Arguments: PORT REUSE, where REUSE is "true" or "false" (the article calls
 * setReuseAddress before bind) or "default" (it is not called, and the JVM's
 * default shows). The first line printed, "listening PORT reuse address: X",
 * is what tcplab waits for; X is getReuseAddress() after bind.
 */
public class ReuseAddress {
    public static void main(String[] args) throws IOException {
        int port = Integer.parseInt(args[0]);
        String reuse = args[1];
        ServerSocket serverSocket = new ServerSocket();
        // setReuseAddress must be called before bind
        if (!reuse.equals("default")) {
            serverSocket.setReuseAddress(Boolean.parseBoolean(reuse));
        }
        serverSocket.bind(new InetSocketAddress(port));
        System.out.println("listening " + port + " reuse address: " + serverSocket.getReuseAddress());
        System.out.flush();
        while (true) {
            Socket socket = serverSocket.accept();
            OutputStream out = socket.getOutputStream();
            out.write("Hello\n".getBytes());
            out.close();
        }
    }
}
